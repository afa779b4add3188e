//! How much slower `open` is after a crash that left the pre-writer's
//! zeros ahead of the tail (they are data extents the recovery scan reads
//! when it looks past the end of the records).
//!
//! ```text
//! cargo run --release --example prewrite_open -- make DIR on|off   # then exits without closing
//! cargo run --release --example prewrite_open -- open DIR          # times Store::open
//! ```
//!
//! `make` puts 1,000 objects of 4 KiB, waits until the pre-writer (`on`)
//! has 64 MiB ahead of the tail, and exits without dropping the store (a
//! crash: no close, so nothing is given back). `open` opens it (pre-writer
//! off, so it adds nothing) and prints the time; evict the segment from the
//! page cache in between for a cold open.

use std::time::{Duration, Instant};

use partstore::{LayerConfig, Options, PartBody, Store};

fn allocated(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> partstore::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: prewrite_open make DIR on|off | open DIR";
    let (Some(cmd), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let dir = std::path::Path::new(dir);
    match cmd.as_str() {
        "make" => {
            let on = args.get(3).is_some_and(|a| a == "on");
            let s = Store::open(dir, Options::default().prewrite(on))?;
            s.create_layer("l", LayerConfig::default())?;
            let data = vec![7u8; 4096];
            for i in 0..1000 {
                s.put_object("l", &format!("k{i}"), PartBody::new(&data[..], 4096))?;
            }
            let start = Instant::now();
            while on && allocated(dir) < (64 << 20) && start.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(50));
            }
            println!(
                "allocated {} MiB in the segments; exiting without a close",
                allocated(dir) >> 20
            );
            std::process::exit(0);
        }
        "open" => {
            let t = Instant::now();
            let s = Store::open(dir, Options::default().prewrite(false))?;
            let took = t.elapsed();
            println!(
                "open: {:.1} ms ({} objects)",
                took.as_secs_f64() * 1e3,
                s.stats().objects
            );
            // Leave it as it was for the next timing: no close.
            std::process::exit(0);
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
