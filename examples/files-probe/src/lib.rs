//! Probes of the directories (and scratch space) a task is granted.

wit_bindgen::generate!({ path: "wit", world: "files-probe" });

struct Probe;

fn names(path: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map_err(|e| format!("{path}: {e}"))?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{path}: {e}"))?;
    names.sort();
    Ok(names)
}

impl Guest for Probe {
    fn read_file(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
    }

    fn write_file(path: String, text: String) -> Result<(), String> {
        std::fs::write(&path, text).map_err(|e| format!("{path}: {e}"))
    }

    fn list_dir(path: String) -> Result<Vec<String>, String> {
        names(&path)
    }

    fn scratch() -> Result<Vec<String>, String> {
        let before = names("/scratch")?;
        if !before.is_empty() {
            return Err(format!("/scratch is not empty: {before:?}"));
        }
        std::fs::write("/scratch/work.txt", "intermediate").map_err(|e| e.to_string())?;
        let back = std::fs::read_to_string("/scratch/work.txt").map_err(|e| e.to_string())?;
        if back != "intermediate" {
            return Err(format!("read back {back:?}"));
        }
        names("/scratch")
    }

    fn mark(dir: String, tag: String) -> Result<(), String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for n in 0u32.. {
            let path = format!("{dir}/{tag}.{nanos}-{n}");
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("{path}: {e}")),
            }
        }
        Err("no free name".into())
    }

    fn env_var(name: String) -> Option<String> {
        std::env::var(name).ok()
    }
}

export!(Probe);
