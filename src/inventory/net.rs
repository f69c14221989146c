//! Minimal CIDR arithmetic for validation and for deriving service IPs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    fn bits(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    fn as_u128(ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(v4) => u32::from(v4) as u128,
            IpAddr::V6(v6) => u128::from(v6),
        }
    }

    fn mask(&self) -> u128 {
        let host_bits = u32::from(self.bits() - self.prefix);
        let all: u128 = if self.bits() == 32 {
            u32::MAX as u128
        } else {
            u128::MAX
        };
        all.checked_shl(host_bits).unwrap_or(0) & all
    }

    fn network(&self) -> u128 {
        Self::as_u128(self.addr) & self.mask()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && Self::as_u128(ip) & self.mask() == self.network()
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.addr.is_ipv4() != other.addr.is_ipv4() {
            return false;
        }
        let (wide, narrow) = if self.prefix <= other.prefix {
            (self, other)
        } else {
            (other, self)
        };
        wide.contains(narrow.addr)
    }

    /// The `n`-th address of the network (`n = 1` is the first usable address).
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let host_bits = u32::from(self.bits() - self.prefix);
        if host_bits < 128 && n >> host_bits != 0 {
            return None;
        }
        let v = self.network() + n;
        Some(if self.bits() == 32 {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(v))
        })
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not in address/prefix form (e.g. 10.96.0.0/12)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("`{prefix}` is not a prefix length"))?;
        let cidr = Cidr { addr, prefix };
        if prefix > cidr.bits() {
            return Err(format!(
                "prefix /{prefix} is longer than the address ({} bits)",
                cidr.bits()
            ));
        }
        if Self::as_u128(addr) != cidr.network() {
            return Err(format!(
                "`{s}` has host bits set; the network address is {}",
                Cidr {
                    addr: cidr.nth(0).expect("network address"),
                    prefix
                }
            ));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_derives() {
        let c: Cidr = "10.96.0.0/12".parse().unwrap();
        assert_eq!(c.nth(1).unwrap().to_string(), "10.96.0.1");
        assert_eq!(c.nth(10).unwrap().to_string(), "10.96.0.10");
        assert!(c.contains("10.111.255.255".parse().unwrap()));
        assert!(!c.contains("10.112.0.0".parse().unwrap()));
        let p: Cidr = "10.244.0.0/16".parse().unwrap();
        assert!(!c.overlaps(&p));
        let wide: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(wide.overlaps(&p) && p.overlaps(&wide));
        let v6: Cidr = "fd00::/108".parse().unwrap();
        assert_eq!(v6.nth(1).unwrap().to_string(), "fd00::1");
    }

    #[test]
    fn rejects_bad_input() {
        assert!("10.96.0.1/12"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("host bits"));
        assert!("10.96.0.0".parse::<Cidr>().is_err());
        assert!("10.96.0.0/33".parse::<Cidr>().is_err());
        assert!("10.300.0.0/16".parse::<Cidr>().is_err());
    }
}
