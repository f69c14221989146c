//! The two things an image needs to know about a dynamically linked program: its program
//! interpreter (`PT_INTERP`) and the libraries it names (`DT_NEEDED`). Read from the file, so
//! nothing is run. 64-bit little-endian ELF only (x86_64, arm64).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Linking {
    /// `/lib64/ld-linux-x86-64.so.2`; `None` for a static program or a library.
    pub interpreter: Option<String>,
    /// `libc.so.6`, ... in file order.
    pub needed: Vec<String>,
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("invalid ELF file: {what}"),
    )
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn read_at(f: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    if len > 64 << 20 {
        return Err(invalid("a segment larger than 64 MiB"));
    }
    let mut buf = vec![0; len as usize];
    f.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// The linking of `path`: `None` when it is not an ELF file (a script, data). An ELF file of
/// another class or byte order is an error.
pub(super) fn linking(path: &Path) -> io::Result<Option<Linking>> {
    let f = File::open(path)?;
    let mut ident = [0u8; 64];
    let n = f.read_at(&mut ident, 0)?;
    if n < 4 || ident[..4] != *b"\x7fELF" {
        return Ok(None);
    }
    if n < 64 || ident[4] != 2 || ident[5] != 1 {
        return Err(invalid("not 64-bit little-endian"));
    }
    let phoff = u64_at(&ident, 0x20);
    let phentsize = u16_at(&ident, 0x36) as u64;
    let phnum = u16_at(&ident, 0x38) as u64;
    if phentsize < 56 {
        return Err(invalid("program header entries too small"));
    }
    let ph = read_at(&f, phoff, phentsize * phnum)?;
    // (type, offset, vaddr, filesz)
    let headers: Vec<(u32, u64, u64, u64)> = (0..phnum as usize)
        .map(|i| {
            let h = &ph[i * phentsize as usize..];
            (u32_at(h, 0), u64_at(h, 8), u64_at(h, 16), u64_at(h, 32))
        })
        .collect();
    let mut out = Linking::default();
    for &(kind, offset, _, size) in &headers {
        if kind == PT_INTERP {
            let raw = read_at(&f, offset, size)?;
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            out.interpreter =
                Some(String::from_utf8(raw[..end].to_vec()).map_err(|_| invalid("interpreter"))?);
        }
    }
    let Some(&(_, dyn_offset, _, dyn_size)) = headers.iter().find(|h| h.0 == PT_DYNAMIC) else {
        return Ok(Some(out));
    };
    let dynamic = read_at(&f, dyn_offset, dyn_size)?;
    let mut needed_offsets = Vec::new();
    let (mut strtab, mut strsz) = (None, None);
    for entry in dynamic.chunks_exact(16) {
        let (tag, value) = (u64_at(entry, 0), u64_at(entry, 8));
        match tag {
            DT_NULL => break,
            DT_NEEDED => needed_offsets.push(value),
            DT_STRTAB => strtab = Some(value),
            DT_STRSZ => strsz = Some(value),
            _ => {}
        }
    }
    if needed_offsets.is_empty() {
        return Ok(Some(out));
    }
    let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
        return Err(invalid("DT_NEEDED without a string table"));
    };
    // DT_STRTAB is an address: find the loaded segment holding it.
    let file_offset = headers
        .iter()
        .find(|&&(kind, _, vaddr, size)| {
            kind == PT_LOAD && vaddr <= strtab && strtab < vaddr + size
        })
        .map(|&(_, offset, vaddr, _)| strtab - vaddr + offset)
        .ok_or_else(|| invalid("string table outside the loaded segments"))?;
    let strings = read_at(&f, file_offset, strsz)?;
    for at in needed_offsets {
        let s = strings
            .get(at as usize..)
            .ok_or_else(|| invalid("DT_NEEDED outside the string table"))?;
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        out.needed
            .push(String::from_utf8(s[..end].to_vec()).map_err(|_| invalid("library name"))?);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_interpreter_and_needed_libraries() {
        // This test binary is a dynamically linked program (Rust links libc dynamically).
        let exe = std::env::current_exe().unwrap();
        let l = linking(&exe).unwrap().unwrap();
        let interp = l.interpreter.expect("an interpreter");
        assert!(
            interp.starts_with('/') && interp.contains("ld-"),
            "{interp}"
        );
        assert!(l.needed.iter().any(|n| n == "libc.so.6"), "{:?}", l.needed);

        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert_eq!(linking(&script).unwrap(), None);
        let short = dir.path().join("short");
        std::fs::write(&short, b"\x7fELF\x01").unwrap();
        assert!(linking(&short).is_err());
    }
}
