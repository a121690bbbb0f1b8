//! Unpacking in the same pass as the download: a `PipeSink` consumer decompresses zstd, gzip and
//! xz, or walks a wheel's zip members, while the bytes arrive from a real server.

mod support;

use std::io::{self, Read, Write};

use gpulibs_fetch::{
    decompressor, fetch, read_zip_stream, Compression, FetchError, PipeSink, Progress, Sink,
};
use support::{artifact, quick_options, test_bytes, Reply, Server};

fn quiet(_: &Progress) {}

/// Data that compresses (so the decoders do real work) but is not trivial.
fn payload(len: usize) -> Vec<u8> {
    let noise = test_bytes(len / 8 + 1);
    (0..len)
        .map(|i| {
            if i % 8 == 0 {
                noise[i / 8]
            } else {
                b"gpulibs!"[i % 8]
            }
        })
        .collect()
}

fn compress(compression: Compression, data: &[u8]) -> Vec<u8> {
    match compression {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => {
            // Two frames, as parallel compressors write them.
            let half = data.len() / 2;
            let mut out = ruzstd::encoding::compress_to_vec(
                &data[..half],
                ruzstd::encoding::CompressionLevel::Fastest,
            );
            out.extend(ruzstd::encoding::compress_to_vec(
                &data[half..],
                ruzstd::encoding::CompressionLevel::Fastest,
            ));
            out
        }
        Compression::Xz => {
            let mut w =
                lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1))
                    .unwrap();
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
    }
}

#[test]
fn each_compression_unpacks_while_downloading_across_a_resume() {
    let data = payload(600_000);
    for compression in [Compression::Zstd, Compression::Gzip, Compression::Xz] {
        let packed = compress(compression, &data);
        let server = Server::start();
        server.file("/a", &packed, vec![Reply::DropAfter(packed.len() / 3)]);
        let dir = tempfile::tempdir().unwrap();
        let art = artifact("x", vec![server.url("/a")], &packed);
        let mut sink = PipeSink::new(move |reader| {
            let mut out = Vec::new();
            decompressor(compression, reader).read_to_end(&mut out)?;
            Ok(out)
        });
        fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
        assert_eq!(sink.take_output().unwrap(), data, "{compression:?}");
        assert_eq!(server.log().len(), 2, "{compression:?}");
    }
}

#[test]
fn restart_runs_the_consumer_again_from_byte_zero() {
    let data = payload(300_000);
    let packed = compress(Compression::Gzip, &data);
    let server = Server::start();
    server.file(
        "/a",
        &packed,
        vec![Reply::DropAfter(packed.len() / 2), Reply::IgnoreRange],
    );
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/a")], &packed);
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    let mut sink = PipeSink::new(move |reader| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut out = Vec::new();
        decompressor(Compression::Gzip, reader).read_to_end(&mut out)?;
        Ok(out)
    });
    fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!(sink.take_output().unwrap(), data);
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn consumer_sees_an_error_not_an_end_when_the_digest_fails() {
    let data = payload(100_000);
    let server = Server::start();
    server.file("/a", &data, vec![Reply::WrongBytes]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/a")], &data);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut sink = PipeSink::new(move |reader| {
        let result = io::copy(reader, &mut io::sink());
        tx.send(result.is_ok()).unwrap();
        result
    });
    let err = fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap_err();
    assert!(matches!(err, FetchError::DigestMismatch { .. }), "{err}");
    assert!(
        !rx.recv().unwrap(),
        "the reader failed instead of ending cleanly"
    );
    assert!(sink.take_output().is_none());
}

#[test]
fn consumer_error_fails_the_fetch() {
    let data = payload(400_000);
    let packed = compress(Compression::Zstd, &data);
    let server = Server::start();
    server.file("/a", &packed, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/a")], &packed);
    // The wrong decoder for the bytes: gzip over zstd.
    let mut sink = PipeSink::new(|reader| {
        io::copy(
            &mut decompressor(Compression::Gzip, reader),
            &mut io::sink(),
        )
    });
    let err = fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap_err();
    // The decoder's error is `InvalidData`: the bytes are refused and deleted, not kept for a
    // next run that would only replay them (whether the refusal came before the digest was
    // known or after it matched depends on how far the pipe had got).
    assert!(
        matches!(err, FetchError::Refused { deleted: true, .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("x: the ")
            && err.to_string().contains(&art.sha256.to_hex())
            && std::error::Error::source(&err)
                .is_some_and(|s| s.to_string().contains("gzip header")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("partial"))
            .unwrap()
            .count(),
        0,
        "the refused bytes were deleted"
    );
}

fn wheel(files: &[(&str, &[u8], zip::CompressionMethod)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    for (name, bytes, method) in files {
        let options = zip::write::SimpleFileOptions::default().compression_method(*method);
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn wheel_members_stream_during_the_download() {
    let lib = payload(500_000);
    let metadata = b"Metadata-Version: 2.1\nName: onnxruntime-gpu\n".to_vec();
    let packed = wheel(&[
        (
            "onnxruntime/capi/libonnxruntime_providers_cuda.so",
            &lib,
            zip::CompressionMethod::Deflated,
        ),
        (
            "onnxruntime_gpu-1.22.0.dist-info/METADATA",
            &metadata,
            zip::CompressionMethod::Stored,
        ),
        ("onnxruntime/empty/", b"", zip::CompressionMethod::Stored),
    ]);
    let server = Server::start();
    server.file("/w.whl", &packed, vec![Reply::DropAfter(packed.len() / 2)]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("ort-wheel", vec![server.url("/w.whl")], &packed);
    let mut sink = PipeSink::new(|reader| {
        let mut members = Vec::new();
        read_zip_stream(reader, |member, data| {
            let mut bytes = Vec::new();
            data.read_to_end(&mut bytes)?;
            members.push((member.name.clone(), member.is_dir, bytes));
            Ok(())
        })?;
        Ok(members)
    });
    fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    let members = sink.take_output().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(
        members[0].0,
        "onnxruntime/capi/libonnxruntime_providers_cuda.so"
    );
    assert_eq!(members[0].2, lib);
    assert_eq!(members[1].2, metadata);
    assert!(members[2].1);
}

#[test]
fn zip_member_corruption_is_caught_by_crc() {
    let lib = payload(10_000);
    let mut packed = wheel(&[("a.so", &lib, zip::CompressionMethod::Stored)]);
    // Flip a byte of the stored data (after the 30-byte header and the 4-byte name).
    packed[30 + 4 + 100] ^= 0xff;
    let err = read_zip_stream(&packed[..], |_, data| {
        io::copy(data, &mut io::sink()).map(drop)
    })
    .unwrap_err();
    assert!(err.to_string().starts_with("a.so: CRC-32 "), "{err}");
}

#[test]
fn zip_with_data_descriptors_streams() {
    // Written to a non-seekable sink, the zip writer uses data descriptors (sizes after data).
    struct NoSeek(Vec<u8>);
    impl Write for NoSeek {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Write::write(&mut self.0, b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let lib = payload(50_000);
    let mut writer = zip::ZipWriter::new_stream(NoSeek(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    writer.start_file("lib.so", options).unwrap();
    writer.write_all(&lib).unwrap();
    writer.start_file("b.txt", options).unwrap();
    writer.write_all(b"hello").unwrap();
    let packed = writer.finish().unwrap().into_inner().0;
    let mut seen = Vec::new();
    let count = read_zip_stream(&packed[..], |member, data| {
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes)?;
        seen.push((member.name.clone(), member.size, bytes));
        Ok(())
    })
    .unwrap();
    assert_eq!(count, 2);
    assert_eq!(seen[0], ("lib.so".to_string(), None, lib));
    assert_eq!(seen[1].2, b"hello");
}

#[test]
fn early_returning_consumer_does_not_block_the_download() {
    let data = payload(2_000_000);
    let server = Server::start();
    server.file("/a", &data, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/a")], &data);
    // Reads only the first kilobyte, as a tar reader stops at its end-of-archive blocks.
    let mut sink = PipeSink::new(|reader| {
        let mut head = vec![0u8; 1024];
        reader.read_exact(&mut head)?;
        Ok(head)
    });
    fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!(sink.take_output().unwrap(), data[..1024]);
    sink.abort();
}
