//! Count the rows of `sqlite_schema` by `type`, and list its tables' names, from the raw
//! bytes of page 1 of a SQLite database file, without SQLite.
//!
//! Why: a scrape must not open SQLite connections (opening one rewrites the
//! `-shm` file and takes locks). Page 1 holds the root of the `sqlite_schema`
//! table b-tree, so when the whole schema fits on page 1 its bytes alone answer
//! `SELECT type, count(*) FROM sqlite_schema GROUP BY type`. When it does not
//! (page 1 is an interior page), the answer is [`SchemaRead::NeedsSqlite`].
//!
//! The caller supplies a consistent copy of page 1. In rollback-journal mode
//! that is the first page of the main file. In WAL mode the main file only
//! holds page 1 as of the last checkpoint: a newer page 1 may be in the `-wal`
//! file. A page read while a writer is writing it may be torn, which shows up
//! as [`Malformed`] or as wrong counts.
//!
//! Follows the "Database File Format" document of SQLite: the 100-byte file
//! header, the b-tree page header, cell layout, varints, the record format and
//! the rule for how much of a payload stays on the page.
//!
//! Std only. Never panics, whatever the bytes.

use std::fmt;

/// Length of the database file header at the start of page 1.
pub const FILE_HEADER_LEN: usize = 100;

const MAGIC: &[u8; 16] = b"SQLite format 3\0";
const INTERIOR_INDEX: u8 = 0x02;
const INTERIOR_TABLE: u8 = 0x05;
const LEAF_INDEX: u8 = 0x0A;
const LEAF_TABLE: u8 = 0x0D;
/// Size of the b-tree page header of a leaf page.
const LEAF_HEADER_LEN: usize = 8;
/// The smallest usable size (page size minus reserved bytes) SQLite allows.
const MIN_USABLE_SIZE: usize = 480;

/// Number of `sqlite_schema` rows of each type.
///
/// Counted exactly as `SELECT type, count(*) FROM sqlite_schema GROUP BY type`
/// counts them: internal tables (`sqlite_sequence`, `sqlite_stat1`, virtual
/// tables and their shadow tables) are tables, automatic indexes
/// (`sqlite_autoindex_*`) are indexes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SchemaObjects {
    pub tables: u64,
    pub indexes: u64,
    pub views: u64,
    pub triggers: u64,
}

impl SchemaObjects {
    /// The counts labelled with the `type` values SQLite uses, in the order
    /// table, index, view, trigger: handy for emitting one sample per type.
    pub fn by_type(&self) -> [(&'static str, u64); 4] {
        [
            ("table", self.tables),
            ("index", self.indexes),
            ("view", self.views),
            ("trigger", self.triggers),
        ]
    }

    /// All rows of `sqlite_schema`.
    pub fn total(&self) -> u64 {
        self.tables + self.indexes + self.views + self.triggers
    }
}

/// What page 1 tells about the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaRead {
    /// The whole schema is on page 1, and these are its counts.
    Counted(SchemaObjects),
    /// Page 1 alone cannot answer: the caller must ask SQLite (or report the
    /// value as unavailable).
    NeedsSqlite(Fallback),
}

/// Why page 1 alone cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fallback {
    /// Page 1 is an interior table b-tree page: the schema rows are on other
    /// pages. Happens once the schema outgrows one page (a few dozen objects
    /// at 4096-byte pages, fewer with small pages or long CREATE statements).
    SchemaSpansPages,
    /// The `type` column of a row starts or ends on an overflow page. Records
    /// whose payload overflows are otherwise counted: `type` is the first
    /// column and at least ((usable_size - 12) * 32 / 255) - 23 bytes (>= 35) of
    /// an overflowing payload stay on the page, so SQLite never writes such a
    /// row unless a name is megabytes long; this guards the file format's
    /// general case.
    TypeOnOverflowPage,
}

impl Fallback {
    /// A short stable label, e.g. for a metric or a log line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Fallback::SchemaSpansPages => "schema spans several pages",
            Fallback::TypeOnOverflowPage => "type column on an overflow page",
        }
    }
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bytes are not a well-formed page 1 with a leaf or interior table b-tree
/// (a corrupt or torn page, or not a SQLite file). The reason names the first
/// problem found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed page 1: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

/// The page size from the file header, i.e. how many bytes to read for page 1.
///
/// `header` is at least the first [`FILE_HEADER_LEN`] bytes of the file. Checks
/// the magic string and that the size is a power of two in 512..=65536.
pub fn page_size(header: &[u8]) -> Result<usize, Malformed> {
    let h = header
        .get(..FILE_HEADER_LEN)
        .ok_or(Malformed("shorter than the 100-byte file header"))?;
    if h[..MAGIC.len()] != MAGIC[..] {
        return Err(Malformed("not a SQLite 3 database (bad magic string)"));
    }
    let size = match u16::from_be_bytes([h[16], h[17]]) {
        1 => 65536,
        n => usize::from(n),
    };
    if size < 512 || !size.is_power_of_two() {
        return Err(Malformed("invalid page size"));
    }
    Ok(size)
}

/// Count the `sqlite_schema` rows by type from page 1.
///
/// `page1` starts at offset 0 of the database file and holds at least the
/// whole page (the page size is read from the file header; bytes past it are
/// ignored). The usable size (page size minus the reserved bytes of header
/// offset 20) and the text encoding (offset 56) come from the header too, so
/// they cannot disagree with the page.
///
/// Returns [`SchemaRead::Counted`] when page 1 is a table b-tree leaf (an empty
/// schema gives all zeros), [`SchemaRead::NeedsSqlite`] when it is an interior
/// table page or a row's `type` is not on the page, and [`Malformed`] for
/// anything a well-formed page 1 cannot contain: bad header, index or unknown
/// page type, offsets out of the page's usable area, truncated varints or
/// records, a `type` that is not text or not one of table/index/view/trigger.
pub fn count_schema_objects(page1: &[u8]) -> Result<SchemaRead, Malformed> {
    let Some(leaf) = Leaf::of(page1)? else {
        return Ok(SchemaRead::NeedsSqlite(Fallback::SchemaSpansPages));
    };
    let mut counts = SchemaObjects::default();
    let mut fallback = None;
    for i in 0..leaf.cells {
        let at = leaf.cell(i)?;
        match cell_type(leaf.area, at, leaf.encoding)? {
            Some(Kind::Table) => counts.tables += 1,
            Some(Kind::Index) => counts.indexes += 1,
            Some(Kind::View) => counts.views += 1,
            Some(Kind::Trigger) => counts.triggers += 1,
            // Keep checking the other cells: a corrupt page stays Malformed.
            None => fallback = Some(Fallback::TypeOnOverflowPage),
        }
    }
    Ok(match fallback {
        Some(why) => SchemaRead::NeedsSqlite(why),
        None => SchemaRead::Counted(counts),
    })
}

/// The names of the tables in `sqlite_schema` (rows of type `table`, in rowid order), read
/// from page 1 as [`count_schema_objects`] counts them. `Ok(None)` when page 1 alone cannot
/// answer (the schema spans pages, or a row's type or name is on an overflow page).
pub fn table_names(page1: &[u8]) -> Result<Option<Vec<String>>, Malformed> {
    let Some(leaf) = Leaf::of(page1)? else {
        return Ok(None);
    };
    let mut names = Vec::new();
    let mut complete = true;
    for i in 0..leaf.cells {
        let at = leaf.cell(i)?;
        match cell_type_and_name(leaf.area, at, leaf.encoding)? {
            Some((Kind::Table, name)) => names.push(name),
            Some(_) => {}
            None => complete = false,
        }
    }
    Ok(complete.then_some(names))
}

/// Page 1 as a table b-tree leaf: its usable area, its cells and the text encoding.
struct Leaf<'a> {
    page: &'a [u8],
    area: &'a [u8],
    encoding: Option<Encoding>,
    cells: usize,
    content_start: usize,
}

impl<'a> Leaf<'a> {
    /// Checks the header of `page1`; `None` when page 1 is an interior table page.
    fn of(page1: &'a [u8]) -> Result<Option<Leaf<'a>>, Malformed> {
        let size = page_size(page1)?;
        let page = page1
            .get(..size)
            .ok_or(Malformed("shorter than the page size in its header"))?;
        let usable = size - usize::from(page[20]);
        if usable < MIN_USABLE_SIZE {
            return Err(Malformed("too many reserved bytes per page"));
        }
        let encoding = match be32(page, 56) {
            0 => None, // not yet set: allowed while the schema is empty
            1 => Some(Encoding::Utf8),
            2 => Some(Encoding::Utf16Le),
            3 => Some(Encoding::Utf16Be),
            _ => return Err(Malformed("unknown text encoding")),
        };

        let hdr = FILE_HEADER_LEN;
        match page[hdr] {
            LEAF_TABLE => {}
            INTERIOR_TABLE => return Ok(None),
            LEAF_INDEX | INTERIOR_INDEX => return Err(Malformed("page 1 is an index b-tree page")),
            _ => return Err(Malformed("unknown b-tree page type")),
        }
        let cells = usize::from(be16(page, hdr + 3));
        let content_start = match be16(page, hdr + 5) {
            0 => 65536,
            n => usize::from(n),
        };
        let pointers_end = hdr + LEAF_HEADER_LEN + 2 * cells;
        if pointers_end > content_start || content_start > usable {
            return Err(Malformed(
                "cell pointer array or cell content area out of bounds",
            ));
        }
        Ok(Some(Leaf {
            page,
            // Cells live in [content_start, usable); reserved bytes are not theirs.
            area: &page[..usable],
            encoding,
            cells,
            content_start,
        }))
    }

    /// The offset of cell `i`, checked to lie in the cell content area.
    fn cell(&self, i: usize) -> Result<usize, Malformed> {
        let pointers = FILE_HEADER_LEN + LEAF_HEADER_LEN;
        let at = usize::from(be16(self.page, pointers + 2 * i));
        if at < self.content_start || at >= self.area.len() {
            return Err(Malformed("cell pointer out of bounds"));
        }
        Ok(at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Table,
    Index,
    View,
    Trigger,
}

/// The `type` of the table b-tree leaf cell at `at`, or `None` when it is not
/// on this page. `area` is the page up to its usable size.
fn cell_type(
    area: &[u8],
    at: usize,
    encoding: Option<Encoding>,
) -> Result<Option<Kind>, Malformed> {
    let (local, payload_len) = cell_payload(area, at)?;
    record_type(local, payload_len, encoding)
}

/// The `type` and `name` of the table b-tree leaf cell at `at`, or `None` when either is
/// not on this page.
fn cell_type_and_name(
    area: &[u8],
    at: usize,
    encoding: Option<Encoding>,
) -> Result<Option<(Kind, String)>, Malformed> {
    let (local, payload_len) = cell_payload(area, at)?;
    let Some(kind) = record_type(local, payload_len, encoding)? else {
        return Ok(None);
    };
    Ok(record_name(local, payload_len, encoding)?.map(|name| (kind, name)))
}

/// The bytes of the cell at `at`'s payload stored on the page, and the payload's length.
fn cell_payload(area: &[u8], at: usize) -> Result<(&[u8], u64), Malformed> {
    const PAST_AREA: Malformed = Malformed("cell runs past the usable area");
    let (payload_len, n) = varint(&area[at..]).ok_or(PAST_AREA)?;
    let (_rowid, m) = varint(&area[at + n..]).ok_or(PAST_AREA)?;
    let start = at + n + m;
    let local = local_payload_len(payload_len, area.len());
    let overflows = (local as u64) < payload_len;
    let end = start + local + if overflows { 4 } else { 0 };
    if end > area.len() {
        return Err(PAST_AREA);
    }
    if overflows && be32(area, start + local) == 0 {
        return Err(Malformed("overflow page number is 0"));
    }
    Ok((&area[start..start + local], payload_len))
}

/// Bytes of a table b-tree leaf payload of `payload_len` bytes stored on the
/// page itself; the rest goes to overflow pages. `usable` >= 480.
fn local_payload_len(payload_len: u64, usable: usize) -> usize {
    let u = usable as u64;
    let max_local = u - 35;
    if payload_len <= max_local {
        return payload_len as usize;
    }
    let min_local = (u - 12) * 32 / 255 - 23;
    let k = min_local + (payload_len - min_local) % (u - 4);
    (if k <= max_local { k } else { min_local }) as usize
}

/// The first column of the record whose first `local.len()` bytes (of
/// `payload_len`) are `local`, as a schema type. `None` when it lies partly
/// beyond `local` on overflow pages.
fn record_type(
    local: &[u8],
    payload_len: u64,
    encoding: Option<Encoding>,
) -> Result<Option<Kind>, Malformed> {
    let overflows = (local.len() as u64) < payload_len;
    // A varint cut short by the end of the local bytes continues on an
    // overflow page if there is one; otherwise the record is truncated.
    let cut = |m: &'static str| {
        if overflows {
            Ok(None)
        } else {
            Err(Malformed(m))
        }
    };

    let Some((header_len, n)) = varint(local) else {
        return cut("record header size runs past the payload");
    };
    if header_len > payload_len || header_len <= n as u64 {
        return Err(Malformed("bad record header size"));
    }
    let header_end = header_len.min(local.len() as u64) as usize;
    let Some((serial, m)) = varint(&local[n..header_end]) else {
        if header_end < header_len as usize {
            return Ok(None);
        }
        return Err(Malformed("record header runs past its size"));
    };
    if serial < 13 || serial % 2 == 0 {
        return Err(Malformed("type column is not text"));
    }
    debug_assert!(n + m <= header_end);
    let text_end = header_len
        .checked_add((serial - 13) / 2)
        .filter(|&e| e <= payload_len)
        .ok_or(Malformed("type column runs past the payload"))?;
    if text_end > local.len() as u64 {
        return Ok(None);
    }
    let text = &local[header_len as usize..text_end as usize];
    let encoding = encoding.ok_or(Malformed("schema rows but no text encoding in the header"))?;
    classify(text, encoding)
        .map(Some)
        .ok_or(Malformed("type is not table, index, view or trigger"))
}

/// The second column (`name`) of a record whose first column [`record_type`] accepted, or
/// `None` when it lies partly beyond `local` on overflow pages.
fn record_name(
    local: &[u8],
    payload_len: u64,
    encoding: Option<Encoding>,
) -> Result<Option<String>, Malformed> {
    // record_type checked the header size and the type column's serial type and bounds.
    let (header_len, n) =
        varint(local).ok_or(Malformed("record header size runs past the payload"))?;
    let header_end = header_len.min(local.len() as u64) as usize;
    let (type_serial, m) =
        varint(&local[n..header_end]).ok_or(Malformed("record header runs past its size"))?;
    let Some((serial, _)) = varint(&local[n + m..header_end]) else {
        if header_end < header_len as usize {
            return Ok(None);
        }
        return Err(Malformed("record header runs past its size"));
    };
    if serial < 13 || serial % 2 == 0 {
        return Err(Malformed("name column is not text"));
    }
    let start = header_len + (type_serial - 13) / 2;
    let end = start
        .checked_add((serial - 13) / 2)
        .filter(|&e| e <= payload_len)
        .ok_or(Malformed("name column runs past the payload"))?;
    if end > local.len() as u64 {
        return Ok(None);
    }
    let text = &local[start as usize..end as usize];
    let encoding = encoding.ok_or(Malformed("schema rows but no text encoding in the header"))?;
    Ok(Some(decode(text, encoding)))
}

/// Text in the database's encoding, as a `String` (invalid sequences replaced).
fn decode(text: &[u8], encoding: Encoding) -> String {
    let units = |big_endian: bool| -> Vec<u16> {
        text.chunks_exact(2)
            .map(|u| {
                if big_endian {
                    u16::from_be_bytes([u[0], u[1]])
                } else {
                    u16::from_le_bytes([u[0], u[1]])
                }
            })
            .collect()
    };
    match encoding {
        Encoding::Utf8 => String::from_utf8_lossy(text).into_owned(),
        Encoding::Utf16Le => String::from_utf16_lossy(&units(false)),
        Encoding::Utf16Be => String::from_utf16_lossy(&units(true)),
    }
}

fn classify(text: &[u8], encoding: Encoding) -> Option<Kind> {
    let mut buf = [0u8; 7]; // longest type: "trigger"
    let ascii = match encoding {
        Encoding::Utf8 => text,
        Encoding::Utf16Le | Encoding::Utf16Be => {
            if text.len() % 2 != 0 || text.len() > 2 * buf.len() {
                return None;
            }
            for (b, unit) in buf.iter_mut().zip(text.chunks_exact(2)) {
                let (low, high) = match encoding {
                    Encoding::Utf16Le => (unit[0], unit[1]),
                    _ => (unit[1], unit[0]),
                };
                if high != 0 {
                    return None;
                }
                *b = low;
            }
            &buf[..text.len() / 2]
        }
    };
    match ascii {
        b"table" => Some(Kind::Table),
        b"index" => Some(Kind::Index),
        b"view" => Some(Kind::View),
        b"trigger" => Some(Kind::Trigger),
        _ => None,
    }
}

/// A SQLite varint (1 to 9 bytes, big-endian, 7 bits per byte with the high
/// bit meaning "more", all 8 bits of a 9th byte) and its length; `None` when
/// `bytes` ends first.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(9).enumerate() {
        if i == 8 {
            return Some(((value << 8) | u64::from(b), 9));
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Callers guarantee `at + 2 <= page.len()`.
fn be16(page: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([page[at], page[at + 1]])
}

/// Callers guarantee `at + 4 <= page.len()`.
fn be32(page: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]])
}

#[cfg(test)]
mod tests;
