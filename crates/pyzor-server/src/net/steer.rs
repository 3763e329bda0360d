//! Which worker socket a datagram goes to: a classic BPF program attached
//! to the `SO_REUSEPORT` group (`SO_ATTACH_REUSEPORT_CBPF`) that picks the
//! socket from the sender's network — the IPv4 /24 or the IPv6 /56 — so
//! that every datagram of one client (and of its neighbours) lands on one
//! worker and is answered in the order it arrived (docs/server.md,
//! "Workers and per-client order").
//!
//! Without it the kernel hashes the 4-tuple: two sockets of one client
//! (Pyzor 1.1.2's `BatchClient` reports from one and checks from another)
//! reach different workers, and a check can overtake the report sent just
//! before it.
//!
//! The program runs with the packet's data at the UDP payload; the source
//! address is read from the network header through the `SKF_NET_OFF`
//! negative offset. An IPv4 datagram reaching an IPv6 (dual-stack) socket
//! still has an IPv4 header, so the version nibble decides. Anything else
//! returns an index past the group, which makes the kernel fall back to its
//! own hash.

use std::io;
use std::os::fd::AsRawFd;

use libc::sock_filter;

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic/socket.h; the `libc` crate
/// only defines it for Android). Architectures with their own socket
/// option numbers are not listed: there the program is not attached.
#[cfg(any(
    target_arch = "x86",
    target_arch = "x86_64",
    target_arch = "arm",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "powerpc64",
    target_arch = "s390x",
    target_arch = "loongarch64"
))]
const SO_ATTACH_REUSEPORT_CBPF: Option<libc::c_int> = Some(51);
#[cfg(not(any(
    target_arch = "x86",
    target_arch = "x86_64",
    target_arch = "arm",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "powerpc64",
    target_arch = "s390x",
    target_arch = "loongarch64"
)))]
const SO_ATTACH_REUSEPORT_CBPF: Option<libc::c_int> = None;

/// Multipliers of the hash (odd, from the golden ratio): the prefix is
/// multiplied, the middle bits of the product taken, then `mod n`.
const MIX: u32 = 0x9e37_79b1;
const MIX_V6: u32 = 0x85eb_ca6b;

/// Offset of a network-header byte for `BPF_ABS` loads.
const fn net(off: i32) -> u32 {
    (libc::SKF_NET_OFF + off) as u32
}

const fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The program for a group of `workers` sockets (≥ 1): returns the index
/// `hash(prefix) mod workers`, or `u32::MAX` (kernel's choice) for a
/// packet that is neither IPv4 nor IPv6.
pub(crate) fn program(workers: u32) -> Vec<sock_filter> {
    use libc::{
        BPF_ABS, BPF_ADD, BPF_ALU, BPF_B, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_MISC, BPF_MOD,
        BPF_MUL, BPF_RET, BPF_RSH, BPF_TAX, BPF_W, BPF_X,
    };
    let n = workers.max(1);
    vec![
        // 0: A = IP version (high nibble of the first header byte).
        stmt(BPF_LD | BPF_B | BPF_ABS, net(0)),
        stmt(BPF_ALU | BPF_RSH | BPF_K, 4),
        // 2: IPv4 → 4, IPv6 → 7, anything else → 17 (offsets count from
        // the next instruction).
        jump(BPF_JMP | BPF_JEQ | BPF_K, 4, 1, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 6, 3, 13),
        // 4: IPv4: A = the /24 of the source address (bytes 12..15).
        stmt(BPF_LD | BPF_W | BPF_ABS, net(12)),
        stmt(BPF_ALU | BPF_RSH | BPF_K, 8),
        jump(BPF_JMP | libc::BPF_JA, 6, 0, 0),
        // 7: IPv6: A = first 32 bits × MIX_V6 + next 24 bits (the /56 of
        // the source address, bytes 8..14).
        stmt(BPF_LD | BPF_W | BPF_ABS, net(8)),
        stmt(BPF_ALU | BPF_MUL | BPF_K, MIX_V6),
        stmt(BPF_MISC | BPF_TAX, 0),
        stmt(BPF_LD | BPF_W | BPF_ABS, net(12)),
        stmt(BPF_ALU | BPF_RSH | BPF_K, 8),
        stmt(BPF_ALU | BPF_ADD | BPF_X, 0),
        // 13 (from 6 and 12): A = ((A × MIX) >> 16) mod n.
        stmt(BPF_ALU | BPF_MUL | BPF_K, MIX),
        stmt(BPF_ALU | BPF_RSH | BPF_K, 16),
        stmt(BPF_ALU | BPF_MOD | BPF_K, n),
        stmt(BPF_RET | libc::BPF_A, 0),
        // 17: not IP: an index past the group = the kernel's hash.
        stmt(BPF_RET | BPF_K, u32::MAX),
    ]
}

/// Attach [`program`] to the reuseport group of `sock` (any member; the
/// program applies to the whole group). Fails on kernels without
/// `SO_ATTACH_REUSEPORT_CBPF` (before 4.5) or where it is not known.
pub(crate) fn attach(sock: &impl AsRawFd, workers: u32) -> io::Result<()> {
    let Some(opt) = SO_ATTACH_REUSEPORT_CBPF else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SO_ATTACH_REUSEPORT_CBPF is not known on this architecture",
        ));
    };
    let mut prog = program(workers);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel
    // copies the program.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// A classic BPF interpreter for the instructions [`program`] uses,
    /// run on a network header (`SKF_NET_OFF` loads read from it).
    fn run(prog: &[sock_filter], header: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let load = |k: u32, size: usize| -> u32 {
            let off = (k as i32 - libc::SKF_NET_OFF) as usize;
            header[off..off + size]
                .iter()
                .fold(0u32, |v, b| (v << 8) | u32::from(*b))
        };
        loop {
            let i = prog[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_ABS => a = load(i.k, 1),
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => a = load(i.k, 4),
                c if c == libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K => a >>= i.k,
                c if c == libc::BPF_ALU | libc::BPF_MUL | libc::BPF_K => a = a.wrapping_mul(i.k),
                c if c == libc::BPF_ALU | libc::BPF_ADD | libc::BPF_X => a = a.wrapping_add(x),
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= i.k,
                c if c == libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K => a %= i.k,
                c if c == libc::BPF_MISC | libc::BPF_TAX => x = a,
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf })
                }
                c if c == libc::BPF_RET | libc::BPF_A => return a,
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                c => panic!("instruction {c:#x} not interpreted"),
            }
        }
    }

    fn header(src: IpAddr) -> Vec<u8> {
        match src {
            IpAddr::V4(a) => {
                let mut h = vec![0x45u8; 20];
                h[12..16].copy_from_slice(&a.octets());
                h
            }
            IpAddr::V6(a) => {
                let mut h = vec![0u8; 40];
                h[0] = 0x60;
                h[8..24].copy_from_slice(&a.octets());
                h
            }
        }
    }

    fn pick(workers: u32, src: IpAddr) -> u32 {
        run(&program(workers), &header(src))
    }

    #[test]
    fn one_network_one_worker() {
        for n in [2, 3, 4, 7, 64] {
            for net in 0..64u8 {
                let first = pick(n, Ipv4Addr::new(10, 1, net, 1).into());
                assert!(first < n);
                for host in [2, 77, 255] {
                    assert_eq!(pick(n, Ipv4Addr::new(10, 1, net, host).into()), first);
                }
                let p: Ipv6Addr = format!("2001:db8:0:{net:x}00::1").parse().unwrap();
                let q: Ipv6Addr = format!("2001:db8:0:{net:x}ff:1:2:3:4").parse().unwrap();
                let (a, b) = (pick(n, p.into()), pick(n, q.into()));
                assert!(a < n);
                assert_eq!(a, b, "{p} and {q} share a /56");
            }
        }
    }

    #[test]
    fn networks_spread_over_the_workers() {
        // The load generator's sources: 127.0.x.1 for 16 networks.
        for n in [2u32, 3, 4] {
            let mut used = vec![0u32; n as usize];
            for x in 1..=16u8 {
                used[pick(n, Ipv4Addr::new(127, 0, x, 1).into()) as usize] += 1;
            }
            assert!(used.iter().all(|&c| c >= 2), "{n} workers: {used:?}");
            let mut used6 = vec![0u32; n as usize];
            for x in 0..64u16 {
                let a = Ipv6Addr::new(0x2001, 0xdb8, 0, x << 8, 0, 0, 0, 1);
                used6[pick(n, a.into()) as usize] += 1;
            }
            assert!(used6.iter().all(|&c| c >= 8), "{n} workers: {used6:?}");
        }
    }

    #[test]
    fn not_ip_is_left_to_the_kernel() {
        let mut h = header(Ipv4Addr::LOCALHOST.into());
        h[0] = 0x15;
        assert_eq!(run(&program(4), &h), u32::MAX);
    }
}
