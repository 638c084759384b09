//! Misbehaving functions: the endpoint must contain every one of them.

wit_bindgen::generate!({ path: "wit", world: "faults" });

struct Faults;

impl Guest for Faults {
    fn spin() -> u64 {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn hog(mib: u32) -> u64 {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        for i in 0..mib {
            chunks.push(vec![(i % 251) as u8 + 1; 1 << 20]);
        }
        chunks.iter().map(|c| u64::from(c[c.len() / 2])).sum()
    }

    fn boom(message: String) {
        panic!("{message}");
    }

    fn chatty(lines: u32) -> u32 {
        for i in 0..lines {
            println!("stdout line {i}");
            eprintln!("stderr line {i}");
        }
        lines
    }

    fn big(bytes: u32) -> String {
        "x".repeat(bytes as usize)
    }

    fn logs(count: u32) -> u32 {
        for i in 0..count {
            let n = i.to_string();
            ferry_guest::log::emit(ferry_guest::log::Level::Info, "step", &[("i", &n)]);
            ferry_guest::log::progress(u64::from(i) + 1, u64::from(count), "steps");
        }
        count
    }

    fn noisy_boom(message: String) {
        println!("about to fail: {message}");
        ferry_guest::log::emit(
            ferry_guest::log::Level::Warn,
            "failing",
            &[("why", &message)],
        );
        panic!("{message}");
    }

    fn recurse(depth: u32) -> u64 {
        fn down(n: u32) -> u64 {
            let frame = std::hint::black_box([u64::from(n); 32]);
            if n == 0 {
                return frame[0];
            }
            down(n - 1).wrapping_add(frame[n as usize % 32])
        }
        down(depth)
    }

    fn dial(address: String) -> Result<String, String> {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(&address).map_err(|e| e.to_string())?;
        stream
            .write_all(b"escaped the sandbox")
            .map_err(|e| e.to_string())?;
        Ok(format!("connected to {address}"))
    }
}

export!(Faults);
