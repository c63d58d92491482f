//! Addresses on 127.0.0.1 for nodes and proxies, held by listeners until their users start,
//! so that no port is handed out twice meanwhile.

use std::net::{SocketAddr, TcpListener};

use crate::KitError;

/// Addresses reserved by listeners bound to them: drop it right before the processes that
/// will listen there start.
#[derive(Debug, Default)]
pub struct Reserved {
    /// The addresses, in the order asked for.
    pub addrs: Vec<SocketAddr>,
    held: Vec<TcpListener>,
}

impl Reserved {
    /// Releases the addresses for their users.
    pub fn release(&mut self) {
        self.held.clear();
    }

    /// Equal-length reservations merged element by element: the first address of each, then
    /// the second of each, and so on (a node's API, peer and HTTP address in turn); all held.
    pub fn interleave<const N: usize>(parts: [Reserved; N]) -> Reserved {
        let len = parts.iter().map(|p| p.addrs.len()).min().unwrap_or(0);
        let addrs = (0..len)
            .flat_map(|i| parts.iter().map(move |p| p.addrs[i]))
            .collect();
        let held = parts.into_iter().flat_map(|p| p.held).collect();
        Reserved { addrs, held }
    }
}

/// `count` distinct free addresses on 127.0.0.1, chosen by the system and held.
pub fn reserve_free(count: usize) -> Result<Reserved, KitError> {
    let held: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| KitError::io("finding free ports", e))?;
    let addrs = held
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<_, _>>()
        .map_err(|e| KitError::io("finding free ports", e))?;
    Ok(Reserved { addrs, held })
}

/// `count` addresses from port `base` on if all are free (true), otherwise any free ones
/// (false); held either way.
pub fn reserve_from(base: u16, count: usize) -> Result<(Reserved, bool), KitError> {
    let fixed: Vec<SocketAddr> = (0..count)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], base.saturating_add(i as u16))))
        .collect();
    let held: Result<Vec<TcpListener>, _> = fixed.iter().map(TcpListener::bind).collect();
    match held {
        Ok(held) => Ok((Reserved { addrs: fixed, held }, true)),
        Err(_) => Ok((reserve_free(count)?, false)),
    }
}

/// `count` distinct free addresses on 127.0.0.1, chosen by the system (released on return).
pub fn free_addresses(count: usize) -> Result<Vec<SocketAddr>, KitError> {
    Ok(reserve_free(count)?.addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_addresses_are_distinct_and_held_until_released() {
        let mut r = reserve_free(4).unwrap();
        let mut ports: Vec<u16> = r.addrs.iter().map(|a| a.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 4);
        assert!(TcpListener::bind(r.addrs[0]).is_err());
        r.release();
        assert!(TcpListener::bind(r.addrs[0]).is_ok());
    }
}
