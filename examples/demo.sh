#!/bin/sh
# netcell's demo: a web server and a client inside one container, on the container's
# private loopback; the host's 127.0.0.1 does not see that server.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet -p netcell
NETCELL=target/release/netcell
PORT=${PORT:-8000}
echo "== netcell run -- <a web server and curl on 127.0.0.1:$PORT> =="
exec "$NETCELL" run --name demo -- sh -c "
  python3 -m http.server $PORT --bind 127.0.0.1 >/dev/null 2>&1 &
  i=0; until curl -s -o /dev/null http://127.0.0.1:$PORT/; do i=\$((i+1)); [ \$i -lt 100 ] || exit 1; sleep 0.05; done
  echo \"inside the container: curl http://127.0.0.1:$PORT/ -> HTTP \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$PORT/)\"
  # The same request through the host's kernel (the shim switched off for this one curl):
  code=\$(env -u LD_PRELOAD -u NETCELL_CONTROL curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$PORT/ || true)
  echo \"on the host:          curl http://127.0.0.1:$PORT/ -> \${code:-000} (000: nothing listens there)\"
  echo \"container sockets:    \$(python3 -c 'import socket; s=socket.socket(); s.bind((\"0.0.0.0\",0)); print(\"bound\", s.getsockname(), \"in the container stack\")')\"
"
