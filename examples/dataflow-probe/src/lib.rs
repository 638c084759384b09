//! Small functions to build task graphs from (the dataflow tests use them).

wit_bindgen::generate!({
    path: "wit",
    world: "dataflow-probe",
});

struct Probe;

impl Guest for Probe {
    fn add(a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    fn square(x: i64) -> i64 {
        x.wrapping_mul(x)
    }

    fn sum(xs: Vec<i64>) -> i64 {
        xs.iter().fold(0i64, |a, b| a.wrapping_add(*b))
    }

    fn sum_pair(p: Pair) -> i64 {
        p.left.wrapping_add(p.right)
    }

    fn checked(x: i64, bad: i64) -> Result<i64, String> {
        if x == bad {
            Err(format!("{x} is the bad value"))
        } else {
            Ok(x)
        }
    }

    fn slow(x: i64, ms: u32) -> i64 {
        std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
        x
    }

    fn greeting(name: String) -> String {
        format!("hello, {name}")
    }

    fn flaky(path: String) -> u32 {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let n = text.trim().parse::<u32>().unwrap_or(0) + 1;
                std::fs::write(&path, n.to_string()).expect("the state file is writable");
                n
            }
            Err(_) => {
                std::fs::write(&path, "0").expect("the state directory is writable");
                panic!("the first run fails on purpose")
            }
        }
    }
}

export!(Probe);
