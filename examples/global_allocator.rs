//! The crate as a program's real global allocator, over a static arena.
//!
//! Every allocation of this program, the runtime's included, comes from a 32 MiB static arena
//! managed by `alloc_buddy_simple`. It builds an inverted index of generated text, sorts and
//! reshapes it, checks the results, and prints the heap's statistics along the way.
//!
//! ```text
//! cargo run --release --example global_allocator
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use alloc_buddy_simple::{LockedHeap, heap_with_arena};

#[global_allocator]
static HEAP: LockedHeap = heap_with_arena!(32 << 20);

/// A small deterministic generator, so every run does the same work.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const SYLLABLES: [&str; 12] = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "zu", "pe", "do", "ha"];

fn word(rng: &mut Rng) -> String {
    let len = 1 + rng.next() % 4;
    (0..len).map(|_| SYLLABLES[(rng.next() % 12) as usize]).collect()
}

fn main() {
    let start = HEAP.lock().stats();
    println!("{start}\n");
    work();
    let mut heap = HEAP.lock();
    heap.check_invariants().expect("heap invariants");
    heap.coalesce();
    let end = heap.stats();
    drop(heap);
    println!("\nafter freeing everything:\n{end}");
    // The runtime keeps a few allocations of its own (stdout's buffer), so compare totals.
    assert_eq!(end.total_bytes, start.total_bytes);
    assert!(end.allocations <= start.allocations + 2, "leaked allocations: {end}");
    println!("\nglobal_allocator: ok");
}

/// Real work on the heap: everything it allocates is freed when it returns.
fn work() {
    // Generate 20 000 "documents" of 5-40 words each.
    let mut rng = Rng(0x2016_0b0d_d1e5);
    let documents: Vec<String> = (0..20_000)
        .map(|_| {
            let mut doc = String::new();
            for i in 0..5 + rng.next() % 36 {
                if i > 0 {
                    doc.push(' ');
                }
                doc.push_str(&word(&mut rng));
            }
            doc
        })
        .collect();

    // Inverted index: word -> documents that contain it.
    let mut index: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (id, doc) in documents.iter().enumerate() {
        for w in doc.split(' ') {
            let postings = index.entry(w).or_default();
            if postings.last() != Some(&(id as u32)) {
                postings.push(id as u32);
            }
        }
    }
    let total_postings: usize = index.values().map(Vec::len).sum();
    println!(
        "indexed {} documents: {} distinct words, {total_postings} postings",
        documents.len(),
        index.len()
    );
    println!("{}\n", HEAP.lock().stats());

    // Word frequencies through a HashMap, then the top ten by count.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for doc in &documents {
        for w in doc.split(' ') {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    let mut top: Vec<(&str, usize)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top.truncate(10);
    let mut line = String::from("most frequent:");
    for (w, n) in &top {
        write!(line, " {w}×{n}").unwrap();
    }
    println!("{line}");

    // Check the index against a direct scan for the most frequent word.
    let (best, _) = top[0];
    let scanned: Vec<u32> = (0..documents.len() as u32)
        .filter(|&id| documents[id as usize].split(' ').any(|w| w == best))
        .collect();
    assert_eq!(index[best], scanned, "index disagrees with a scan");

    // Reallocation-heavy reshaping: grow and shrink buffers repeatedly.
    let mut buffers: Vec<(usize, Vec<u8>)> = Vec::new();
    for round in 0..2_000usize {
        let mut buf = Vec::with_capacity(16);
        for i in 0..(round % 700) {
            buf.push((i ^ round) as u8);
        }
        if round % 3 == 0 {
            buf.shrink_to_fit();
        }
        buffers.push((round, buf));
        if buffers.len() > 200 {
            let (r, victim) = buffers.swap_remove((rng.next() % 200) as usize);
            assert!(victim.iter().enumerate().all(|(i, &b)| b == (i ^ r) as u8), "buffer {r} corrupted");
        }
    }
    let kept: usize = buffers.iter().map(|(_, b)| b.len()).sum();
    println!("reshaped 2000 buffers, {kept} bytes kept in {} of them", buffers.len());
}
