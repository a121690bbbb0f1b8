//! Reading the dynamic section: every class and byte order, and hostile bytes.

mod deps_support;

use deps_support::{build_so, craft_elf, Crafted};
use gpulibs_inspect::deps::{
    dynamic_info, dynamic_section, inspect_file, ByteOrder, DepsError, ElfClass, ParseError,
    SearchContext,
};

#[test]
fn crafted_files_of_every_class_and_byte_order() {
    for (class64, big_endian, machine) in [
        (true, false, 62),
        (false, false, 3),
        (true, true, 21),
        (false, true, 8),
    ] {
        let bytes = craft_elf(&Crafted {
            class64,
            big_endian,
            machine,
            soname: Some("libcrafted.so.1"),
            needed: &["libcudart.so.13", "libc.so.6"],
            rpath: Some("$ORIGIN/../lib"),
            runpath: None,
        });
        let info = dynamic_info(&bytes).unwrap();
        assert_eq!(
            info.identity.class,
            if class64 {
                ElfClass::Elf64
            } else {
                ElfClass::Elf32
            }
        );
        assert_eq!(
            info.identity.byte_order,
            if big_endian {
                ByteOrder::Big
            } else {
                ByteOrder::Little
            }
        );
        assert_eq!(info.identity.machine, machine);
        assert!(info.is_dynamic);
        assert_eq!(info.soname.as_deref(), Some("libcrafted.so.1"));
        assert_eq!(info.needed, ["libcudart.so.13", "libc.so.6"]);
        assert_eq!(info.rpath.as_deref(), Some("$ORIGIN/../lib"));
        assert_eq!(info.runpath, None);
        assert!(info.runtime_names.is_empty(), "{:?}", info.runtime_names);
    }
}

#[test]
fn empty_runpath_is_kept_apart_from_no_runpath() {
    let bytes = craft_elf(&Crafted {
        class64: true,
        big_endian: false,
        machine: 62,
        soname: None,
        needed: &[],
        rpath: Some("/x"),
        runpath: Some(""),
    });
    let info = dynamic_section(&bytes).unwrap();
    assert_eq!(info.runpath.as_deref(), Some(""));
    assert_eq!(info.soname, None);
}

#[test]
fn files_without_dynamic_section() {
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("a.o");
    let status = std::process::Command::new("cc")
        .args(["-c", "-x", "c", "-o"])
        .arg(&obj)
        .arg("-")
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let info = dynamic_info(&std::fs::read(&obj).unwrap()).unwrap();
    assert!(!info.is_dynamic);
    assert!(info.needed.is_empty());
}

#[test]
fn clear_errors_for_what_is_not_elf() {
    assert_eq!(dynamic_info(b""), Err(ParseError::NotElf));
    assert_eq!(dynamic_info(b"#!/bin/sh\n"), Err(ParseError::NotElf));
    assert!(matches!(
        dynamic_info(b"\x7fELF\x02\x01\x01"),
        Err(ParseError::Truncated(_))
    ));
    let mut header = craft_elf(&Crafted {
        class64: true,
        big_endian: false,
        machine: 62,
        soname: None,
        needed: &["libx.so.1"],
        rpath: None,
        runpath: None,
    });
    header[40..48].copy_from_slice(&u64::MAX.to_le_bytes()); // e_shoff far outside
    header[60..62].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
    assert!(
        matches!(dynamic_info(&header), Err(ParseError::Malformed(_))),
        "{:?}",
        dynamic_info(&header)
    );
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("libnot.so");
    std::fs::write(&text, "INPUT(-lnot)\n").unwrap();
    let err = inspect_file(&text, &SearchContext::default()).unwrap_err();
    assert!(matches!(
        err,
        DepsError::Parse {
            source: ParseError::NotElf,
            ..
        }
    ));
    // What failed, then why, each once.
    assert_eq!(
        err.to_string(),
        format!("cannot inspect {}", text.display())
    );
    assert_eq!(
        std::error::Error::source(&err).map(|s| s.to_string()),
        Some("not an ELF file".to_string())
    );
    let err = inspect_file(&dir.path().join("nope.so"), &SearchContext::default()).unwrap_err();
    assert!(matches!(err, DepsError::Io { .. }));
    assert!(err.to_string().starts_with(&format!(
        "cannot read {}",
        dir.path().join("nope.so").display()
    )));
}

/// Deterministic xorshift.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncated_and_corrupted_real_libraries_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("libA.so");
    build_so(
        &so,
        "libA.so",
        "#include <string.h>\nconst char *n(void) { return \"libcudnn.so.9\"; }\n\
         void m(char *p) { memcpy(p, \"libcufft.so.12\", 15); }\n",
        &["-lm", "-Wl,-rpath,$ORIGIN"],
    );
    let real = std::fs::read(&so).unwrap();
    assert!(dynamic_info(&real).is_ok());
    for cut in (0..real.len()).step_by(7) {
        let _ = dynamic_info(&real[..cut]);
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for round in 0..2000 {
        let mut bytes = real.clone();
        for _ in 0..1 + round % 8 {
            let r = next(&mut state);
            // Mostly the headers and tables, where offsets live; sometimes anywhere.
            let at = if r % 4 == 0 {
                (r >> 8) as usize % bytes.len()
            } else {
                (r >> 8) as usize % 128
            };
            bytes[at] = (r >> 32) as u8;
        }
        // Section headers sit at the end of a linked file: corrupt them too.
        let r = next(&mut state);
        let tail = bytes.len() - 1 - (r as usize % 512.min(bytes.len()));
        bytes[tail] ^= (r >> 24) as u8;
        let _ = dynamic_info(&bytes);
    }
}
