//! The embedding API's TCP calls: `accept`, `send`, `recv` and queries, for a
//! program that links the stack instead of going through a stand-in.

use super::*;

impl Sockets {
    /// `accept(2)` for the embedding API (a program's `accept()` is a `recvmsg` on
    /// its stand-in).
    pub fn accept(&mut self, id: SocketId) -> Result<(SocketId, SocketAddr), AcceptError> {
        let s = self.get_mut(id).ok_or(AcceptError::NotListening)?;
        let Proto::Tcp(TcpState::Listening(l)) = &mut s.proto else {
            return Err(AcceptError::NotListening);
        };
        let (cid, _) = l.ready.pop_front().ok_or(AcceptError::WouldBlock)?;
        let peer = self
            .tcp_peer_addr(cid)
            .map_err(|_| AcceptError::WouldBlock)?;
        Ok((cid, peer))
    }

    /// `getpeername(2)` of a TCP socket.
    pub(crate) fn tcp_peer_addr(&self, id: SocketId) -> Result<SocketAddr, LookupError> {
        let s = self.get(id).ok_or(LookupError::NoSuchSocket)?;
        match &s.proto {
            Proto::Tcp(TcpState::Connected(c)) => Ok(c.remote),
            Proto::Tcp(TcpState::Spliced(sp)) => Ok(sp.remote),
            _ => Err(LookupError::NotConnected),
        }
    }

    /// Whether the socket is listening.
    pub fn is_listening(&self, id: SocketId) -> bool {
        matches!(
            self.get(id).map(|s| &s.proto),
            Some(Proto::Tcp(TcpState::Listening(_)))
        )
    }

    /// Whether the socket's connection is established (or closing).
    pub fn is_connected(&self, id: SocketId) -> bool {
        matches!(
            self.get(id).map(|s| &s.proto),
            Some(Proto::Tcp(TcpState::Connected(_)))
        )
    }

    /// Writes for the embedding API.
    pub fn send(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        data: &[u8],
    ) -> Result<usize, IoError> {
        let s = self.get_mut(id).ok_or(IoError::NotConnected)?;
        if s.standin.is_some() {
            return Err(IoError::NotApi);
        }
        match &s.proto {
            Proto::Tcp(TcpState::Connected(c)) => {
                if c.we_closed {
                    return Err(IoError::BrokenPipe);
                }
                let sk = sock(ifs, c.iface, c.handle);
                if sk.state() == State::Closed {
                    return Err(IoError::Reset);
                }
                match sk.send_slice(data) {
                    Ok(0) if !data.is_empty() => Err(IoError::WouldBlock),
                    Ok(n) => Ok(n),
                    Err(_) => Err(IoError::BrokenPipe),
                }
            }
            Proto::Tcp(TcpState::Connecting(_)) => Err(IoError::WouldBlock),
            _ => Err(IoError::NotConnected),
        }
    }

    /// Reads for the embedding API: `Ok(0)` is end of stream.
    pub fn recv(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        buf: &mut [u8],
    ) -> Result<usize, IoError> {
        let s = self.get_mut(id).ok_or(IoError::NotConnected)?;
        if s.standin.is_some() {
            return Err(IoError::NotApi);
        }
        match &mut s.proto {
            Proto::Tcp(TcpState::Connected(c)) => {
                if c.rd_shut {
                    return Ok(0);
                }
                let sk = sock(ifs, c.iface, c.handle);
                match sk.recv_slice(buf) {
                    Ok(0) if !buf.is_empty() => {
                        if sk.state() == State::Closed
                            && !(c.we_closed && c.remote_fin)
                            && !c.reset_reported
                        {
                            c.reset_reported = true;
                            s.error = 0;
                            return Err(IoError::Reset);
                        }
                        Err(IoError::WouldBlock)
                    }
                    Ok(n) => Ok(n),
                    Err(tcp::RecvError::Finished) => Ok(0),
                    Err(tcp::RecvError::InvalidState) => {
                        if c.remote_fin || c.reset_reported {
                            Ok(0)
                        } else {
                            c.reset_reported = true;
                            Err(IoError::Reset)
                        }
                    }
                }
            }
            Proto::Tcp(TcpState::Connecting(_)) => Err(IoError::WouldBlock),
            _ => Err(IoError::NotConnected),
        }
    }
}
