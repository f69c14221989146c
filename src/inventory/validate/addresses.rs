//! What an IP address is, as messages about host addresses and ranges say it.

use std::net::{IpAddr, Ipv4Addr};

pub(super) fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

pub(super) fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Why `ip` cannot be a host's address, if it cannot.
pub(super) fn not_a_host_address(ip: IpAddr, allow_loopback: bool) -> Option<String> {
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return Some(format!(
                "it is an IPv4-mapped IPv6 address; write the IPv4 address {v4}"
            ));
        }
    }
    if ip.is_unspecified() {
        Some(
            "it is the unspecified address; expected the address other hosts reach this host at"
                .into(),
        )
    } else if ip.is_multicast() {
        Some("it is a multicast address; expected a unicast address".into())
    } else if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        Some("it is the broadcast address; expected a unicast address".into())
    } else if ip.is_loopback() && !allow_loopback {
        Some("it is a loopback address, which reaches only the machine that uses it; expected an address other hosts reach this host at (set cluster.allow_loopback_hosts: true for a test cluster whose hosts all run on this machine)".into())
    } else {
        None
    }
}
