#!/bin/sh
# netcell's demo: a web server and clients inside one container, on the container's
# private loopback. The host's 127.0.0.1 does not see that server, and a program in
# the container cannot step out: not with `env -i`, not as a static binary.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet -p netcell
NETCELL=target/release/netcell
PORT=${PORT:-8000}
tmp=$(mktemp -d)
trap 'touch "$tmp/done"; rm -rf "$tmp"' EXIT
echo "== netcell run -- <a web server on 127.0.0.1:$PORT and clients> =="
"$NETCELL" run --name demo -- sh -c "
  python3 -m http.server $PORT --bind 127.0.0.1 >/dev/null 2>&1 & server=\$!
  i=0; until curl -s -o /dev/null http://127.0.0.1:$PORT/; do i=\$((i+1)); [ \$i -lt 100 ] || exit 1; sleep 0.05; done
  echo \"inside, curl:                  http://127.0.0.1:$PORT/ -> HTTP \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$PORT/)\"
  echo \"inside, env -i curl:           http://127.0.0.1:$PORT/ -> HTTP \$(env -i /usr/bin/curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$PORT/)\"
  if command -v busybox >/dev/null; then
    echo \"inside, static busybox wget:   http://127.0.0.1:$PORT/ -> \$(busybox wget -q -O /dev/null http://127.0.0.1:$PORT/ && echo ok)\"
  fi
  echo \"container sockets:             \$(python3 -c 'import socket; s=socket.socket(); s.bind((\"0.0.0.0\",0)); print(\"bound\", s.getsockname(), \"in the container stack\")')\"
  touch $tmp/ready
  while [ ! -e $tmp/done ]; do sleep 0.05; done
  kill \$server
" &
i=0
until [ -e "$tmp/ready" ]; do i=$((i+1)); [ $i -lt 400 ] || { echo "the container did not start" >&2; exit 1; }; sleep 0.05; done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)
echo "on the host, curl:             http://127.0.0.1:$PORT/ -> ${code:-000} (000: nothing listens there)"
touch "$tmp/done"
wait
