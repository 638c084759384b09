//! Blobs in and out of a function: `checksum` reads a blob in pieces and
//! hashes it (never holding it whole), `generate` writes a new one.

use ferry_guest::blobs::{self, Writer};

wit_bindgen::generate!({
    path: ["../../guest-sdk/wit", "wit"],
    world: "ferry-examples:blob-probe/blob-probe",
    with: { "ferry:host/blobs@0.1.0": ferry_guest::bindings::ferry::host::blobs },
});

struct Probe;

/// Bytes per write of `generate`.
const PIECE: usize = 4 << 20;

/// The bytes `generate` writes: a xorshift stream, the same on every machine.
fn fill(buf: &mut [u8], state: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

impl Guest for Probe {
    fn checksum(blob: BlobRef, piece: u64) -> Result<String, String> {
        let reader = blobs::open(&blob)?;
        let mut hasher = blake3::Hasher::new();
        let mut seen = 0u64;
        loop {
            let data = reader.read(piece.max(1))?;
            if data.is_empty() {
                break;
            }
            seen += data.len() as u64;
            hasher.update(&data);
        }
        if seen != blob.size {
            return Err(format!("read {seen} bytes of a {}-byte blob", blob.size));
        }
        Ok(hasher.finalize().to_hex().to_string())
    }

    fn generate(size: u64, seed: u64) -> Result<BlobRef, String> {
        let writer = Writer::new()?;
        let mut state = seed | 1;
        let mut buf = vec![0u8; PIECE];
        let mut left = size;
        while left > 0 {
            let n = left.min(PIECE as u64) as usize;
            fill(&mut buf[..n], &mut state);
            writer.write(&buf[..n])?;
            left -= n as u64;
        }
        writer.finish()
    }

    fn abandon(size: u64) -> Result<u64, String> {
        let writer = Writer::new()?;
        writer.write(&vec![7u8; size as usize])?;
        Ok(writer.written())
    }
}

export!(Probe);
