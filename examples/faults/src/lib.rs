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
}

export!(Faults);
