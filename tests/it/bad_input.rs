//! Hostile and broken input: each case is a clear error with exit 1, never a panic, and
//! stays within bounded time and memory (checked by the benchmark, not timed here).

use crate::common::*;
use std::io::Write;

fn check(name: &str, bytes: &[u8], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    let o = hostform(dir.path(), &["validate", name]);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{name}: exit {} (stderr: {err})", code(&o));
    assert!(
        err.contains(expect),
        "{name}: expected `{expect}` in:\n{err}"
    );
    assert!(!err.contains("panicked"), "{name} panicked:\n{err}");
}

#[test]
fn malformed_yaml() {
    check("m.yaml", b"host: a\nvms: [\n", "error[yaml-syntax]");
    check("m2.yaml", b"host: a\n  disks: x\n", "error[yaml-syntax]");
    check("m3.yaml", b"host: \"unterminated\n", "error[yaml-syntax]");
}

#[test]
fn tabs_and_duplicate_keys() {
    check(
        "t.yaml",
        b"host: a\ndisks:\n\tsda: {}\n",
        "YAML forbids tabs",
    );
    check("d.yaml", b"host: a\nhost: b\n", "duplicate mapping key");
}

#[test]
fn encodings_and_binary_files() {
    check(
        "u.yaml",
        b"host: a\nx: \xff\xfe\n",
        "u.yaml:2:4: the file is not valid UTF-8",
    );
    let mut junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    junk[10] = 0;
    check("b.yaml", &junk, "binary file");
}

#[test]
fn empty_and_comment_only_files() {
    check("e.yaml", b"", "the spec is empty");
    check("c.yaml", b"# nothing\n\n", "the spec is empty");
    check("n.yaml", b"---\n", "");
}

#[test]
fn directories_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    let o = hostform(dir.path(), &["validate", "d"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("d is a directory"), "{}", stderr(&o));
    let o = hostform(dir.path(), &["validate", "missing.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("missing.yaml: no such file"));
    // No spec named and no hostform.yaml here.
    let o = hostform(dir.path(), &["validate"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("hostform.yaml: no such file"));
}

#[test]
fn a_100_mb_file_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.yaml");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(100 * 1024 * 1024).unwrap(); // sparse: costs nothing
    let o = hostform(dir.path(), &["validate", "big.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("a spec may be at most"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!(
        "host: a\nx: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    check("deep.yaml", deep.as_bytes(), "nested too deeply");
    let mut deep_maps = String::from("host: a\n");
    for i in 0..200 {
        deep_maps.push_str(&" ".repeat(i));
        deep_maps.push_str("k:\n");
    }
    check("deepmap.yaml", deep_maps.as_bytes(), "nested too deeply");
}

#[test]
fn billion_laughs_is_refused() {
    let mut s = String::from(
        "host: a\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for c in "bcdefghi".chars() {
        s.push_str(&format!(
            "{c}: &{c} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
        prev = c;
    }
    check("laughs.yaml", s.as_bytes(), "expands too many aliases");
}

#[test]
fn anchors_and_merge_keys_of_normal_size_work() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "host: a\ndisks:\n  sda: { serial: S1 }\nvolume-groups:\n  vg0:\n    pvs: [sda]\n    lvs:\n      a: &lv { size: 1GiB, fs: ext4 }\n      b: *lv\n      c: { <<: *lv, size: 2GiB }\n",
    )
    .unwrap();
    let o = hostform(dir.path(), &["validate", "a.yaml"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("3 LVs"));
}

/// A disk `id` is one name under /dev/disk/by-id/ or /dev/disk/by-path/: nothing else, and no
/// way out of those directories.
#[test]
fn disk_ids_by_id_by_path_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    for good in [
        "/dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234",
        "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4",
        "/dev/disk/by-path/pci-0000:00:02.0",
    ] {
        std::fs::write(
            dir.path().join("g.yaml"),
            format!("host: h\ndisks:\n  a:\n    id: \"{good}\"\n"),
        )
        .unwrap();
        let o = hostform(dir.path(), &["validate", "g.yaml"]);
        assert_eq!(code(&o), 0, "{good}: {}", stderr(&o));
    }
    for bad in [
        "/dev/sda",
        "/dev/disk/by-path/",
        "/dev/disk/by-path/..",
        "/dev/disk/by-path/../../sda",
        "/dev/disk/by-id/x/y",
        "/dev/disk/by-uuid/1234",
    ] {
        check(
            "b.yaml",
            format!("host: h\ndisks:\n  a:\n    id: \"{bad}\"\n").as_bytes(),
            "error[identity]",
        );
    }
}
