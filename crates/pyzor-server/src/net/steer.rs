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

/// A client network as the steering program sees it: an IPv4 /24 (the
/// source address shifted right by 8) or an IPv6 /56 (the first 32 bits
/// and the next 24). An IPv4 client of a dual-stack socket is an IPv4 /24:
/// its datagrams carry an IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Prefix {
    V4(u32),
    V6(u32, u32),
}

impl Prefix {
    /// The network of `ip` (IPv4-mapped IPv6 addresses are IPv4).
    pub(crate) fn of(ip: std::net::IpAddr) -> Prefix {
        match ip {
            std::net::IpAddr::V4(a) => Prefix::V4(u32::from(a) >> 8),
            std::net::IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Prefix::V4(u32::from(v4) >> 8),
                None => {
                    let o = a.octets();
                    let hi = u32::from_be_bytes([o[0], o[1], o[2], o[3]]);
                    let lo = u32::from_be_bytes([0, o[4], o[5], o[6]]);
                    Prefix::V6(hi, lo)
                }
            },
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Prefix::V4(p) => write!(f, "{}/24", std::net::Ipv4Addr::from(p << 8)),
            Prefix::V6(hi, lo) => {
                let mut o = [0u8; 16];
                o[..4].copy_from_slice(&hi.to_be_bytes());
                o[4..7].copy_from_slice(&lo.to_be_bytes()[1..]);
                write!(f, "{}/56", std::net::Ipv6Addr::from(o))
            }
        }
    }
}

/// Where a jump of the program goes, resolved by [`Asm::finish`].
#[derive(Clone, Copy)]
enum To {
    Next,
    Label(usize),
}

/// A tiny assembler: instructions with symbolic jump targets.
struct Asm {
    code: Vec<(sock_filter, To, To)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn here(&mut self, l: usize) {
        self.labels[l] = Some(self.code.len());
    }
    fn op(&mut self, code: u32, k: u32) {
        self.code.push((stmt(code, k), To::Next, To::Next));
    }
    /// A conditional jump `code` against `k`: to `t` when true, `f` when false.
    fn jump(&mut self, code: u32, k: u32, t: To, f: To) {
        self.code.push((jump(code, k, 0, 0), t, f));
    }
    /// Resolve the targets (all forward, at most 255 instructions away:
    /// [`MAX_PENALISED`] keeps every program well below that).
    fn finish(self) -> Vec<sock_filter> {
        let labels = self.labels;
        let off = |at: usize, to: To| -> usize {
            match to {
                To::Next => 0,
                To::Label(l) => labels[l].expect("label placed") - at - 1,
            }
        };
        self.code
            .iter()
            .enumerate()
            .map(|(at, &(mut i, t, f))| {
                if u32::from(i.code) == libc::BPF_JMP | libc::BPF_JA {
                    i.k = off(at, t) as u32;
                } else if u32::from(i.code) & 0x07 == libc::BPF_JMP {
                    i.jt = u8::try_from(off(at, t)).expect("jump within 255");
                    i.jf = u8::try_from(off(at, f)).expect("jump within 255");
                }
                i
            })
            .collect()
    }
}

/// The most networks [`program`] sends to the penalty socket: bounds the
/// program (at most 5 instructions per network, 99 in all) and the cost of
/// each datagram's walk through it.
pub(crate) const MAX_PENALISED: usize = 16;

/// The program for a group of `workers` worker sockets (≥ 1): returns the
/// index `hash(prefix) mod workers`, or `workers` — the penalty socket,
/// bound after the workers — for a network of `penalised` (at most
/// [`MAX_PENALISED`] are used), or `u32::MAX` (the kernel's choice) for a
/// packet that is neither IPv4 nor IPv6.
pub(crate) fn program(workers: u32, penalised: &[Prefix]) -> Vec<sock_filter> {
    use libc::{
        BPF_A, BPF_ABS, BPF_ADD, BPF_ALU, BPF_B, BPF_JA, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_MISC,
        BPF_MOD, BPF_MUL, BPF_RET, BPF_RSH, BPF_TAX, BPF_W, BPF_X,
    };
    let n = workers.max(1);
    let penalised = &penalised[..penalised.len().min(MAX_PENALISED)];
    let mut a = Asm {
        code: Vec::new(),
        labels: Vec::new(),
    };
    let (v4, v6, hash, not_ip, penalty) = (a.label(), a.label(), a.label(), a.label(), a.label());
    // A = IP version (high nibble of the first header byte).
    a.op(BPF_LD | BPF_B | BPF_ABS, net(0));
    a.op(BPF_ALU | BPF_RSH | BPF_K, 4);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, 4, To::Label(v4), To::Next);
    a.jump(
        BPF_JMP | BPF_JEQ | BPF_K,
        6,
        To::Label(v6),
        To::Label(not_ip),
    );
    // IPv4: A = the /24 of the source address (bytes 12..15); a penalised
    // one goes to the penalty socket.
    a.here(v4);
    a.op(BPF_LD | BPF_W | BPF_ABS, net(12));
    a.op(BPF_ALU | BPF_RSH | BPF_K, 8);
    for p in penalised {
        if let Prefix::V4(k) = *p {
            a.jump(BPF_JMP | BPF_JEQ | BPF_K, k, To::Label(penalty), To::Next);
        }
    }
    a.jump(BPF_JMP | BPF_JA, 0, To::Label(hash), To::Next);
    // IPv6: the /56 of the source address is bytes 8..14.
    a.here(v6);
    for p in penalised {
        if let Prefix::V6(hi, lo) = *p {
            let other = a.label();
            a.op(BPF_LD | BPF_W | BPF_ABS, net(8));
            a.jump(BPF_JMP | BPF_JEQ | BPF_K, hi, To::Next, To::Label(other));
            a.op(BPF_LD | BPF_W | BPF_ABS, net(12));
            a.op(BPF_ALU | BPF_RSH | BPF_K, 8);
            a.jump(BPF_JMP | BPF_JEQ | BPF_K, lo, To::Label(penalty), To::Next);
            a.here(other);
        }
    }
    // A = first 32 bits × MIX_V6 + next 24 bits.
    a.op(BPF_LD | BPF_W | BPF_ABS, net(8));
    a.op(BPF_ALU | BPF_MUL | BPF_K, MIX_V6);
    a.op(BPF_MISC | BPF_TAX, 0);
    a.op(BPF_LD | BPF_W | BPF_ABS, net(12));
    a.op(BPF_ALU | BPF_RSH | BPF_K, 8);
    a.op(BPF_ALU | BPF_ADD | BPF_X, 0);
    // A = ((A × MIX) >> 16) mod n.
    a.here(hash);
    a.op(BPF_ALU | BPF_MUL | BPF_K, MIX);
    a.op(BPF_ALU | BPF_RSH | BPF_K, 16);
    a.op(BPF_ALU | BPF_MOD | BPF_K, n);
    a.op(BPF_RET | BPF_A, 0);
    // Not IP: an index past the group = the kernel's hash.
    a.here(not_ip);
    a.op(BPF_RET | BPF_K, u32::MAX);
    a.here(penalty);
    a.op(BPF_RET | BPF_K, n);
    a.finish()
}

/// Attach [`program`] to the reuseport group of `sock` (any member; the
/// program applies to the whole group). Attaching again replaces the
/// program at once: the kernel swaps it under RCU, no datagram waits. Fails on kernels without
/// `SO_ATTACH_REUSEPORT_CBPF` (before 4.5) or where it is not known.
pub(crate) fn attach(sock: &impl AsRawFd, workers: u32, penalised: &[Prefix]) -> io::Result<()> {
    let Some(opt) = SO_ATTACH_REUSEPORT_CBPF else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SO_ATTACH_REUSEPORT_CBPF is not known on this architecture",
        ));
    };
    let mut prog = program(workers, penalised);
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
        run(&program(workers, &[]), &header(src))
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
        assert_eq!(run(&program(4, &[]), &h), u32::MAX);
    }

    #[test]
    fn penalised_networks_go_to_the_penalty_socket() {
        let v4 = |c: u8| IpAddr::from(Ipv4Addr::new(198, 51, c, 9));
        let v6 = |c: u16| -> IpAddr {
            Ipv6Addr::new(0x2001, 0xdb8, 0x77, c << 8 | 0x12, 1, 2, 3, 4).into()
        };
        let pen = [Prefix::of(v4(7)), Prefix::of(v6(3)), Prefix::of(v4(200))];
        assert_eq!(pen[0].to_string(), "198.51.7.0/24");
        assert_eq!(pen[1].to_string(), "2001:db8:77:300::/56");
        for n in [2u32, 3, 5] {
            let p = program(n, &pen);
            for c in 0..=255u8 {
                let want = if c == 7 || c == 200 {
                    n
                } else {
                    pick(n, v4(c))
                };
                assert_eq!(run(&p, &header(v4(c))), want, "{n} workers, 198.51.{c}.9");
                // The other hosts of the /24 too.
                let host = IpAddr::from(Ipv4Addr::new(198, 51, c, 250));
                assert_eq!(run(&p, &header(host)), want);
            }
            for c in 0..=255u16 {
                let want = if c == 3 { n } else { pick(n, v6(c)) };
                assert_eq!(run(&p, &header(v6(c))), want, "{n} workers, /56 {c}");
            }
            // Same first 32 bits, another /56; same /56 low bits, other
            // first 32 bits: not penalised.
            let near: IpAddr = "2001:db8:77:400::1".parse().unwrap();
            let far: IpAddr = "2001:db9:77:300::1".parse().unwrap();
            assert!(run(&p, &header(near)) < n);
            assert!(run(&p, &header(far)) < n);
            let mut h = header(v4(7));
            h[0] = 0x15;
            assert_eq!(run(&p, &h), u32::MAX);
        }
    }

    #[test]
    fn the_program_stays_bounded() {
        let many: Vec<Prefix> = (0..1000u32)
            .map(|i| {
                if i % 2 == 0 {
                    Prefix::V4(i)
                } else {
                    Prefix::V6(i, i)
                }
            })
            .collect();
        let p = program(4, &many);
        assert!(
            p.len() <= 20 + 5 * MAX_PENALISED,
            "{} instructions",
            p.len()
        );
        // Only the first MAX_PENALISED are used.
        let last = IpAddr::from(Ipv4Addr::from(998u32 << 8));
        assert!(run(&p, &header(last)) < 4);
        assert_eq!(run(&p, &header(Ipv4Addr::from(0u32).into())), 4);
    }

    #[test]
    fn reattaching_moves_a_network_to_the_extra_socket() {
        use std::net::UdpSocket;
        let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let first = crate::net::bind_worker_socket(addr, true, std::time::Duration::ZERO).unwrap();
        let addr = first.local_addr().unwrap();
        let mut socks = vec![first];
        for _ in 0..2 {
            socks.push(
                crate::net::bind_worker_socket(addr, true, std::time::Duration::ZERO).unwrap(),
            );
        }
        let receiver = |socks: &[UdpSocket], from: Ipv4Addr| -> usize {
            let c = UdpSocket::bind((from, 0)).unwrap();
            c.send_to(b"x", addr).unwrap();
            for _ in 0..200 {
                for (i, s) in socks.iter().enumerate() {
                    s.set_nonblocking(true).unwrap();
                    let mut b = [0u8; 4];
                    if s.recv_from(&mut b).is_ok() {
                        return i;
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            panic!("nothing received from {from}");
        };
        let flooder = Ipv4Addr::new(127, 0, 0, 1);
        let normal = Ipv4Addr::new(127, 0, 30, 1);
        attach(&socks[0], 2, &[]).unwrap();
        let normal_worker = receiver(&socks, normal);
        assert!(receiver(&socks, flooder) < 2);
        attach(&socks[1], 2, &[Prefix::of(flooder.into())]).unwrap();
        assert_eq!(receiver(&socks, flooder), 2);
        assert_eq!(receiver(&socks, normal), normal_worker);
        attach(&socks[0], 2, &[]).unwrap();
        assert!(receiver(&socks, flooder) < 2);
    }
}
