//! Just enough ELF64 reading to size the firmware image: section sizes and symbol sizes.

use std::path::Path;

/// One section.
#[derive(Debug, Clone)]
pub struct Section {
    /// Name, e.g. `.text`.
    pub name: String,
    /// Size in memory.
    pub size: u64,
}

/// One symbol with a size.
#[derive(Debug, Clone)]
pub struct Symbol {
    /// Mangled name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Name of the section it is in.
    pub section: String,
}

/// What [`read`] found.
#[derive(Debug, Clone, Default)]
pub struct Elf {
    /// Sections in file order.
    pub sections: Vec<Section>,
    /// Symbols with a non-zero size.
    pub symbols: Vec<Symbol>,
}

impl Elf {
    /// Size of the section called `name` (0 if absent).
    pub fn section(&self, name: &str) -> u64 {
        self.sections
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.size)
            .sum()
    }

    /// Total size of the symbols in `section` whose mangled name contains `needle`.
    pub fn symbols_matching(&self, section: &str, needle: &str) -> u64 {
        self.symbols
            .iter()
            .filter(|s| s.section == section && s.name.contains(needle))
            .map(|s| s.size)
            .sum()
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn idx(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

fn cstr(b: &[u8], at: usize) -> String {
    let tail = b.get(at..).unwrap_or(&[]);
    let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
    String::from_utf8_lossy(&tail[..end]).into_owned()
}

struct Shdr {
    name: usize,
    kind: u32,
    offset: usize,
    size: u64,
    link: usize,
}

/// Reads the sections and sized symbols of a little-endian ELF64 file.
pub fn read(path: &Path) -> Result<Elf, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&b).ok_or_else(|| format!("{}: not a readable ELF64 file", path.display()))
}

const SHT_SYMTAB: u32 = 2;

fn parse(b: &[u8]) -> Option<Elf> {
    if b.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let shoff = idx(u64_at(b, 0x28)?)?;
    let shentsize = usize::from(u16_at(b, 0x3A)?);
    let shnum = usize::from(u16_at(b, 0x3C)?);
    let shstrndx = usize::from(u16_at(b, 0x3E)?);
    let mut shdrs = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let at = shoff + i * shentsize;
        shdrs.push(Shdr {
            name: usize::try_from(u32_at(b, at)?).ok()?,
            kind: u32_at(b, at + 4)?,
            offset: idx(u64_at(b, at + 0x18)?)?,
            size: u64_at(b, at + 0x20)?,
            link: usize::try_from(u32_at(b, at + 0x28)?).ok()?,
        });
    }
    let shstr = shdrs.get(shstrndx)?.offset;
    let names: Vec<String> = shdrs.iter().map(|s| cstr(b, shstr + s.name)).collect();
    let mut elf = Elf {
        sections: shdrs
            .iter()
            .zip(&names)
            .skip(1)
            .map(|(s, n)| Section {
                name: n.clone(),
                size: s.size,
            })
            .collect(),
        symbols: Vec::new(),
    };
    if let Some(symtab) = shdrs.iter().find(|s| s.kind == SHT_SYMTAB) {
        let strtab = shdrs.get(symtab.link)?.offset;
        let count = idx(symtab.size)? / 24;
        for i in 1..count {
            let at = symtab.offset + i * 24;
            let name = usize::try_from(u32_at(b, at)?).ok()?;
            let shndx = usize::from(u16_at(b, at + 6)?);
            let size = u64_at(b, at + 16)?;
            if size == 0 {
                continue;
            }
            if let Some(section) = names.get(shndx) {
                elf.symbols.push(Symbol {
                    name: cstr(b, strtab + name),
                    size,
                    section: section.clone(),
                });
            }
        }
    }
    Some(elf)
}
