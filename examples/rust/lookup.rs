//! A Rust program with std that initializes, snapshots, then answers, as examples/linux/lookup.c:
//! it sieves the primes below 2,000,000 once, calls wasp::snapshot(), then answers the queries on
//! standard input ("N" -> is N prime, "#K" -> the K-th prime). In a virtine with snapshots, every
//! call after the first starts after the sieve. Build and run (the rustc on PATH):
//!   ./dist/wasp build examples/rust/lookup.rs -o /tmp/lookup_rs
//!   printf '97\n#1000\n1999993\n' | ./dist/wasp invoke /tmp/lookup_rs -i -
use std::io::Write;

const LIMIT: usize = 2_000_000;

fn main() {
    let mut composite = vec![false; LIMIT];
    let mut primes = Vec::new();
    for i in 2..LIMIT {
        if composite[i] {
            continue;
        }
        primes.push(i);
        let mut j = i * i;
        while j < LIMIT {
            composite[j] = true;
            j += i;
        }
    }
    let resumed = wasp::snapshot(); // false here; true in every call that starts from the snapshot
    let input = wasp::input().expect("stdin");
    let mut out = std::io::stdout().lock();
    for q in String::from_utf8_lossy(&input).split_whitespace() {
        if let Some(k) = q.strip_prefix('#') {
            match k.parse::<usize>() {
                Ok(k) if k >= 1 && k <= primes.len() => writeln!(out, "prime #{} is {}", k, primes[k - 1]),
                _ => writeln!(out, "prime #{} is out of range (1..{})", k, primes.len()),
            }
        } else {
            match q.parse::<usize>() {
                Ok(n) if n < LIMIT => writeln!(out, "{} is {}", n, if n >= 2 && !composite[n] { "prime" } else { "not prime" }),
                _ => writeln!(out, "{} is out of range (0..{})", q, LIMIT - 1),
            }
        }
        .expect("stdout");
    }
    eprintln!("lookup: {}", if resumed { "from the snapshot" } else { "sieved" });
}
