//! Checks a PyTorch file before burn-store's `PytorchReader` reads it.
//!
//! burn-store never executes code from a pickle (it interprets a fixed set of opcodes and
//! recognises a few torch functions by name), but it trusts the file in other ways: it
//! allocates string and tensor buffers from lengths and shapes the file claims, deep-copies
//! objects on every memo reference (a few hundred bytes can ask for gigabytes), and fills a
//! tensor whose storage is missing, short, corrupt or unlocatable with zeros instead of
//! failing. This module runs the same interpretation first, on an abstract copy of burn-store's
//! pickle machine (same opcodes, same stack and memo semantics, same dispatch on globals, the
//! same lookup of a tensor's storage record), and refuses the file unless burn-store will
//! read it within bounds:
//!
//! - every global the pickle names is on [`ALLOWED_GLOBALS`] (the types and functions a
//!   `torch.save` state dict uses); anything else (`os.system`, `builtins.eval`, a model
//!   class, ...) is refused by name, whatever opcode names it (GLOBAL, STACK_GLOBAL, INST,
//!   the extension registry);
//! - every opcode is one burn-store reads, every length-prefixed argument fits in the bytes
//!   that follow it, nesting stays under [`MAX_DEPTH`], a SETITEMS batch under
//!   [`MAX_BATCH`] objects (burn-store's SETITEMS is quadratic), and what burn-store will
//!   allocate for the objects and memo copies (estimated from its object size) stays
//!   within a budget proportional to the pickle's actual size;
//! - every tensor reachable from the selected dict: its shape's element count does not
//!   overflow, its storage record exists (found exactly as burn-store finds it), is stored
//!   uncompressed inside the file with a matching CRC, and holds the tensor's bytes (offset
//!   plus elements times element size), and its strides are contiguous (burn-store ignores
//!   strides). For the legacy format, the storage sizes burn-store infers must equal the
//!   element counts written before each storage.
//!
//! The tensors it accepted are returned by name, so that the caller can refuse any tensor
//! burn-store produces that the check did not see (failing closed if the two ever disagree).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::rc::Rc;

use burn::tensor::{BoolStore, DType};

/// The globals a pickle may name: what `torch.save` writes for a state dict (tensor
/// rebuilding functions, storage types, `OrderedDict`), plus `argparse.Namespace`, which
/// training checkpoints (DINO's) store as `args` and burn-store keeps as inert data (its
/// NEWOBJ/BUILD opcodes never run a constructor or `__setstate__`).
pub(crate) const ALLOWED_GLOBALS: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "FloatStorage"),
    ("torch", "DoubleStorage"),
    ("torch", "HalfStorage"),
    ("torch", "BFloat16Storage"),
    ("torch", "LongStorage"),
    ("torch", "IntStorage"),
    ("torch", "ShortStorage"),
    ("torch", "CharStorage"),
    ("torch", "ByteStorage"),
    ("torch", "BoolStorage"),
    ("argparse", "Namespace"),
];

/// Deepest nesting of containers accepted (state dicts nest a handful of levels).
pub(crate) const MAX_DEPTH: u32 = 64;

/// Most objects in one SETITEMS batch: Python's pickler writes at most 1000 pairs.
pub(crate) const MAX_BATCH: usize = 2000;

/// Allocation budget for burn-store's objects: this much, plus [`BUDGET_PER_BYTE`] per byte
/// of pickle.
const BUDGET_BASE: u64 = 24 << 20;
/// See [`BUDGET_BASE`]. `torch.save` pickles use 240 to 310 bytes per pickle byte (measured
/// on the parity fixtures, whose every tensor's argument tuples are deep-copied into the
/// memo), so this leaves a factor of three.
const BUDGET_PER_BYTE: u64 = 1024;

/// Why a file was refused.
#[derive(Debug)]
pub(crate) enum GuardError {
    /// The pickle names a global outside [`ALLOWED_GLOBALS`].
    Refused {
        /// `module.name`, or a description when the name is not a constant.
        global: String,
    },
    /// Anything else: what was wrong, and where.
    Invalid(String),
}

type Result<T> = std::result::Result<T, GuardError>;

fn invalid<T>(message: impl Into<String>) -> Result<T> {
    Err(GuardError::Invalid(message.into()))
}

/// A tensor the check accepted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CheckedTensor {
    /// Element type, as burn-store will report it.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Number of elements (the shape's product; 0 for an empty tensor).
    pub numel: usize,
}

/// What the check found: the tensors burn-store will return, by the names it will use.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// Tensors by name (relative to the selected dict).
    pub tensors: HashMap<String, CheckedTensor>,
}

/// Checks the PyTorch file at `path` as burn-store will read it, with `key` selecting a
/// nested dict (`None`: the root dict).
pub(crate) fn check(path: &Path, key: Option<&str>) -> Result<Checked> {
    let file_len = std::fs::metadata(path)
        .map_err(|e| GuardError::Invalid(format!("cannot read the file: {e}")))?
        .len();
    // burn-store's order: a zip archive, else a TAR archive, else the legacy format (its
    // 15-byte magic-number pickle), else one plain pickle.
    if let Ok(Ok(zip)) = File::open(path).map(|f| zip::ZipArchive::new(BufReader::new(f))) {
        return check_zip(zip, file_len, key);
    }
    let bytes =
        std::fs::read(path).map_err(|e| GuardError::Invalid(format!("cannot read: {e}")))?;
    if bytes.len() >= 263 && &bytes[257..262] == b"ustar" {
        return invalid(
            "a TAR archive (the pre-1.6 torchvision format) is not supported; re-save it with \
             torch.save",
        );
    }
    const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";
    if bytes.starts_with(LEGACY_MAGIC) {
        return check_legacy(&bytes, key);
    }
    let mut budget = Budget::new(bytes.len());
    let mut vm = Vm::new(&bytes, 0, "the pickle", &mut budget, Mode::NoData);
    vm.run()?;
    Ok(Checked::default())
}

// --- values --------------------------------------------------------------------------------

/// What burn-store's interpreter allocates per object (its `Object` enum is about the size
/// of a `TensorSnapshot`), doubled for vector growth.
fn node() -> u64 {
    2 * (std::mem::size_of::<burn::store::TensorSnapshot>() as u64 + 16)
}

#[derive(Debug)]
struct Global {
    module: String,
    name: String,
}

impl Global {
    fn is(&self, module: &str, name: &str) -> bool {
        self.module == module && self.name == name
    }
    /// burn-store marks the stack with a `mark.mark` class object.
    fn is_mark(&self) -> bool {
        self.is("mark", "mark")
    }
}

/// A container's items with burn-store's cost of deep-copying it and its nesting depth.
#[derive(Debug, Clone)]
struct Seq {
    items: Vec<V>,
    cost: u64,
    depth: u32,
}

impl Seq {
    fn new(items: Vec<V>) -> Result<Rc<Seq>> {
        let cost = node() + items.iter().map(V::cost).sum::<u64>();
        let depth = 1 + items.iter().map(V::depth).max().unwrap_or(0);
        check_depth(depth)?;
        Ok(Rc::new(Seq { items, cost, depth }))
    }
    fn push(&mut self, v: V) -> Result<()> {
        self.cost += v.cost();
        self.depth = self.depth.max(1 + v.depth());
        check_depth(self.depth)?;
        self.items.push(v);
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Map {
    items: HashMap<Rc<str>, V>,
    cost: u64,
    depth: u32,
}

impl Map {
    fn empty() -> Map {
        Map {
            items: HashMap::new(),
            cost: node(),
            depth: 1,
        }
    }
    fn insert(&mut self, key: Rc<str>, v: V) -> Result<()> {
        let entry = |k: &str, v: &V| node() + k.len() as u64 + v.cost();
        self.cost += entry(&key, &v);
        self.depth = self.depth.max(1 + v.depth());
        check_depth(self.depth)?;
        if let Some(old) = self.items.insert(key.clone(), v) {
            self.cost -= entry(&key, &old);
        }
        Ok(())
    }
}

fn check_depth(depth: u32) -> Result<()> {
    if depth > MAX_DEPTH {
        return invalid(format!(
            "objects are nested more than {MAX_DEPTH} levels deep"
        ));
    }
    Ok(())
}

/// A tensor as `_rebuild_tensor(_v2)` describes it.
#[derive(Debug)]
struct TensorRec {
    dtype: DType,
    storage: String,
    offset: u64,
    shape: Vec<usize>,
    /// `None` when the stride argument is not a tuple of integers.
    stride: Option<Vec<i64>>,
    numel: usize,
    /// Bytes burn-store's legacy reader records for the storage.
    legacy_bytes: u64,
}

/// An abstract burn-store `Object`.
#[derive(Debug, Clone)]
enum V {
    None,
    Scalar,
    Int(i64),
    Str(Rc<str>),
    Class(Rc<Global>),
    Tuple(Rc<Seq>),
    List(Rc<Seq>),
    Dict(Rc<Map>),
    /// A persistent id that was a string (its length).
    Persistent(usize),
    /// A persistent id that was a tuple.
    PTuple(Rc<Seq>),
    Tensor(Rc<TensorRec>),
    /// NEWOBJ's result: `[class, args]`, never called.
    Reduced(Rc<Seq>),
    /// BUILD on something that is not a dict: `[object, state]`, never applied.
    Built(Rc<Seq>),
}

impl V {
    fn cost(&self) -> u64 {
        match self {
            V::None | V::Scalar | V::Int(_) => node(),
            V::Persistent(n) => node() + *n as u64,
            V::Str(s) => node() + s.len() as u64,
            V::Class(g) => node() + (g.module.len() + g.name.len()) as u64,
            V::Tuple(s) | V::List(s) | V::PTuple(s) | V::Reduced(s) | V::Built(s) => s.cost,
            V::Dict(m) => m.cost,
            V::Tensor(t) => 2 * node() + 16 * t.shape.len() as u64 + t.storage.len() as u64,
        }
    }
    fn depth(&self) -> u32 {
        match self {
            V::Tuple(s) | V::List(s) | V::PTuple(s) | V::Reduced(s) | V::Built(s) => s.depth,
            V::Dict(m) => m.depth,
            _ => 0,
        }
    }
    fn is_mark(&self) -> bool {
        matches!(self, V::Class(g) if g.is_mark())
    }
}

/// burn-store's `storage_type_to_dtype`.
fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::Bool(BoolStore::Native),
        _ => return None,
    })
}

// --- the interpreter ---------------------------------------------------------------------

/// What burn-store's allocations may add up to for one file.
struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    fn new(pickle_bytes: usize) -> Budget {
        Budget {
            used: 0,
            limit: BUDGET_BASE + BUDGET_PER_BYTE * pickle_bytes as u64,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// burn-store reads this pickle without a data source: a tensor is an error.
    NoData,
    /// Tensors are read from zip records.
    Zip,
    /// Tensors are read from the legacy format's storage blob.
    Legacy,
}

struct Vm<'a> {
    data: &'a [u8],
    start: usize,
    pos: usize,
    what: &'a str,
    budget: &'a mut Budget,
    mode: Mode,
    stack: Vec<V>,
    memo: HashMap<u32, V>,
    /// Tensors in the order burn-store rebuilds them.
    tensors: Vec<Rc<TensorRec>>,
    /// The first opcode burn-store cannot read (its name and offset).
    unsupported: Option<(&'static str, usize)>,
}

impl<'a> Vm<'a> {
    fn new(
        data: &'a [u8],
        start: usize,
        what: &'a str,
        budget: &'a mut Budget,
        mode: Mode,
    ) -> Self {
        Vm {
            data,
            start,
            pos: start,
            what,
            budget,
            mode,
            stack: Vec::new(),
            memo: HashMap::new(),
            tensors: Vec::new(),
            unsupported: None,
        }
    }

    /// Interprets one pickle; returns its result. `self.pos` ends after its STOP.
    fn run(&mut self) -> Result<V> {
        match self.run_inner() {
            Ok(v) => match self.unsupported {
                None => Ok(v),
                Some((op, at)) => self.unsupported_error(op, at),
            },
            Err(GuardError::Refused { global }) => Err(GuardError::Refused { global }),
            Err(GuardError::Invalid(m)) => match self.unsupported {
                Some((op, at)) => self.unsupported_error(op, at),
                None => invalid(format!("{}: {m}", self.what)),
            },
        }
    }

    fn unsupported_error<T>(&self, op: &str, at: usize) -> Result<T> {
        invalid(format!(
            "{}: byte {}: pickle opcode {op} is not supported (burn-store reads the protocol-2 \
             pickles torch.save writes; re-save the weights with torch.save)",
            self.what,
            at - self.start
        ))
    }

    fn at(&self) -> usize {
        self.pos - self.start
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return invalid(format!(
                "byte {}: {what} claims {n} bytes but only {left} follow (truncated or corrupt)",
                self.at()
            ));
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn uint(&mut self, width: u64, what: &str) -> Result<u64> {
        let b = self.take(width, what)?;
        let mut v = [0u8; 8];
        v[..b.len()].copy_from_slice(b);
        Ok(u64::from_le_bytes(v))
    }

    /// A newline-terminated argument (without the newline and a `\r` before it).
    fn line(&mut self, what: &str) -> Result<&'a [u8]> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return invalid(format!(
                "byte {}: {what} has no terminating newline",
                self.at()
            ));
        };
        self.pos += n + 1;
        let mut l = &rest[..n];
        if l.last() == Some(&b'\r') {
            l = &l[..l.len() - 1];
        }
        Ok(l)
    }

    fn utf8(&self, b: &[u8], what: &str) -> Result<Rc<str>> {
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.into()),
            Err(_) => invalid(format!("byte {}: {what} is not valid UTF-8", self.at())),
        }
    }

    fn charge(&mut self, bytes: u64) -> Result<()> {
        self.budget.used = self.budget.used.saturating_add(bytes);
        if self.budget.used > self.budget.limit {
            return invalid(format!(
                "byte {}: reading this pickle would take more than {} MiB (memo references copy \
                 objects), far more than a state dict of this size needs",
                self.at(),
                self.budget.limit >> 20
            ));
        }
        Ok(())
    }

    fn push(&mut self, v: V) -> Result<()> {
        self.charge(v.cost())?;
        self.stack.push(v);
        Ok(())
    }

    fn push_moved(&mut self, v: V) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<V> {
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => invalid(format!("byte {}: stack underflow", self.at())),
        }
    }

    fn top(&self) -> Result<V> {
        match self.stack.last() {
            Some(v) => Ok(v.clone()),
            None => invalid(format!("byte {}: stack underflow", self.at())),
        }
    }

    fn pop_to_mark(&mut self) -> Result<Vec<V>> {
        let Some(i) = self.stack.iter().rposition(V::is_mark) else {
            return invalid(format!("byte {}: no MARK on the stack", self.at()));
        };
        let items = self.stack.split_off(i + 1);
        self.stack.pop();
        Ok(items)
    }

    fn global(&mut self, module: &str, name: &str) -> Result<V> {
        if !ALLOWED_GLOBALS.contains(&(module, name)) {
            return Err(GuardError::Refused {
                global: format!("{module}.{name}"),
            });
        }
        let g = V::Class(Rc::new(Global {
            module: module.to_string(),
            name: name.to_string(),
        }));
        Ok(g)
    }

    fn mark_unsupported(&mut self, op: &'static str, at: usize) {
        if self.unsupported.is_none() {
            self.unsupported = Some((op, at));
        }
    }

    fn memo_get(&mut self, idx: u64) -> Result<()> {
        let v = u32::try_from(idx)
            .ok()
            .and_then(|i| self.memo.get(&i).cloned());
        match v {
            Some(v) => self.push(v),
            None => invalid(format!(
                "byte {}: memo entry {idx} does not exist",
                self.at()
            )),
        }
    }

    fn memo_put(&mut self, idx: u64) -> Result<()> {
        let v = self.top()?;
        self.charge(v.cost())?;
        self.memo.insert(idx as u32, v);
        Ok(())
    }

    fn dict_key(&self, v: V) -> Result<Rc<str>> {
        match v {
            V::Str(s) => Ok(s),
            V::Int(i) => Ok(i.to_string().into()),
            _ => invalid(format!(
                "byte {}: a dict key is neither a string nor an integer",
                self.at()
            )),
        }
    }

    fn last_dict(&mut self) -> Result<&mut Map> {
        let at = self.at();
        match self.stack.last_mut() {
            Some(V::Dict(m)) => Ok(Rc::make_mut(m)),
            _ => invalid(format!(
                "byte {at}: items set on something that is not a dict"
            )),
        }
    }

    fn last_list(&mut self) -> Result<&mut Seq> {
        let at = self.at();
        match self.stack.last_mut() {
            Some(V::List(s)) => Ok(Rc::make_mut(s)),
            _ => invalid(format!(
                "byte {at}: items appended to something that is not a list"
            )),
        }
    }

    fn run_inner(&mut self) -> Result<V> {
        loop {
            let at = self.pos;
            let op = self.u8("an opcode (the pickle ends before its STOP)")?;
            match op {
                // PROTO: burn-store's legacy reader skips pickles assuming it comes first.
                0x80 => {
                    if at != self.start {
                        return invalid(format!("byte {}: PROTO after the start", at - self.start));
                    }
                    let v = self.u8("PROTO")?;
                    if v > 5 {
                        return invalid(format!("unknown pickle protocol {v}"));
                    }
                }
                b'c' => {
                    let m = self.line("GLOBAL")?;
                    let n = self.line("GLOBAL")?;
                    let (m, n) = (self.utf8(m, "GLOBAL")?, self.utf8(n, "GLOBAL")?);
                    let g = self.global(&m, &n)?;
                    self.push(g)?;
                }
                b'q' => {
                    let i = self.u8("BINPUT")? as u64;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.uint(4, "LONG_BINPUT")?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8("BINGET")? as u64;
                    self.memo_get(i)?;
                }
                b'j' => {
                    let i = self.uint(4, "LONG_BINGET")?;
                    self.memo_get(i)?;
                }
                b')' => {
                    let t = V::Tuple(Seq::new(Vec::new())?);
                    self.push(t)?;
                }
                b']' => {
                    let t = V::List(Seq::new(Vec::new())?);
                    self.push(t)?;
                }
                b'}' => self.push(V::Dict(Rc::new(Map::empty())))?,
                b'(' => {
                    let m = V::Class(Rc::new(Global {
                        module: "mark".into(),
                        name: "mark".into(),
                    }));
                    self.push(m)?;
                }
                b'X' | b'U' => {
                    let n = if op == b'X' {
                        self.uint(4, "BINUNICODE")?
                    } else {
                        self.u8("SHORT_BINSTRING")? as u64
                    };
                    let b = self.take(n, "a string")?;
                    let s = self.utf8(b, "a string")?;
                    self.push(V::Str(s))?;
                }
                b'J' => {
                    let v = self.uint(4, "BININT")? as u32 as i32;
                    self.push(V::Int(v as i64))?;
                }
                b'K' => {
                    let v = self.u8("BININT1")?;
                    self.push(V::Int(v as i64))?;
                }
                b'M' => {
                    let v = self.uint(2, "BININT2")?;
                    self.push(V::Int(v as i64))?;
                }
                b'I' => {
                    let l = self.line("INT")?;
                    let v = std::str::from_utf8(l)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok());
                    match v {
                        Some(v) => self.push(V::Int(v))?,
                        None => return invalid(format!("byte {}: bad INT", at - self.start)),
                    }
                }
                0x8a => {
                    let n = self.u8("LONG1")? as u64;
                    let b = self.take(n, "LONG1")?;
                    let mut v = 0i64;
                    for (i, &byte) in b.iter().enumerate().take(8) {
                        v |= (byte as i64).wrapping_shl(i as u32 * 8);
                    }
                    if n < 8 && b.last().is_some_and(|&x| x & 0x80 != 0) {
                        for i in n..8 {
                            v |= 0xffi64.wrapping_shl(i as u32 * 8);
                        }
                    }
                    self.push(V::Int(v))?;
                }
                b'G' => {
                    self.take(8, "BINFLOAT")?;
                    self.push(V::Scalar)?;
                }
                b'N' => self.push(V::None)?,
                0x88 | 0x89 => self.push(V::Scalar)?,
                b't' => {
                    let items = self.pop_to_mark()?;
                    let t = V::Tuple(Seq::new(items)?);
                    self.charge(node())?;
                    self.push_moved(t);
                }
                b'l' => {
                    let items = self.pop_to_mark()?;
                    let t = V::List(Seq::new(items)?);
                    self.charge(node())?;
                    self.push_moved(t);
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return invalid(format!("byte {}: stack underflow", at - self.start));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let t = V::Tuple(Seq::new(items)?);
                    self.charge(node())?;
                    self.push_moved(t);
                }
                b'a' => {
                    let v = self.pop()?;
                    self.last_list()?.push(v)?;
                }
                b'e' => {
                    let items = self.pop_to_mark()?;
                    let list = self.last_list()?;
                    for v in items {
                        list.push(v)?;
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = match self.pop()? {
                        V::Str(s) => s,
                        _ => {
                            return invalid(format!(
                                "byte {}: SETITEM with a key that is not a string",
                                at - self.start
                            ))
                        }
                    };
                    self.last_dict()?.insert(k, v)?;
                }
                b'u' => {
                    let items = self.pop_to_mark()?;
                    if items.len() % 2 != 0 {
                        return invalid(format!(
                            "byte {}: SETITEMS with an odd count",
                            at - self.start
                        ));
                    }
                    if items.len() > MAX_BATCH {
                        return invalid(format!(
                            "byte {}: SETITEMS with {} objects (Python writes at most {MAX_BATCH})",
                            at - self.start,
                            items.len()
                        ));
                    }
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((self.dict_key(k)?, v));
                    }
                    let d = self.last_dict()?;
                    for (k, v) in pairs {
                        d.insert(k, v)?;
                    }
                }
                b'd' => {
                    let items = self.pop_to_mark()?;
                    if items.len() % 2 != 0 {
                        return invalid(format!(
                            "byte {}: DICT with an odd count",
                            at - self.start
                        ));
                    }
                    let mut m = Map::empty();
                    self.charge(items.iter().map(V::cost).sum())?;
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        m.insert(self.dict_key(k)?, v)?;
                    }
                    self.push_moved(V::Dict(Rc::new(m)));
                }
                b'Q' => {
                    let v = match self.pop()? {
                        V::Str(s) => V::Persistent(s.len()),
                        V::Tuple(t) => V::PTuple(t),
                        _ => {
                            return invalid(format!(
                                "byte {}: a persistent id that is neither a string nor a tuple",
                                at - self.start
                            ))
                        }
                    };
                    self.push_moved(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.push_moved(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.pop()?;
                    let v = match (obj, state) {
                        (V::Dict(mut d), V::Dict(update)) => {
                            let m = Rc::make_mut(&mut d);
                            for (k, v) in update.items.iter() {
                                m.insert(k.clone(), v.clone())?;
                            }
                            V::Dict(d)
                        }
                        (V::Dict(d), _) => V::Dict(d),
                        (obj, state) => V::Built(Seq::new(vec![obj, state])?),
                    };
                    self.charge(node())?;
                    self.push_moved(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = V::Reduced(Seq::new(vec![cls, args])?);
                    self.charge(node())?;
                    self.push_moved(v);
                }
                b'.' => return self.pop(),
                _ => self.other_opcode(op, at)?,
            }
        }
    }

    /// Opcodes burn-store does not read. A global they name is refused by name; the rest are
    /// followed (so that a global later in the pickle is still found) and reported at the end.
    fn other_opcode(&mut self, op: u8, at: usize) -> Result<()> {
        let name: &'static str = match op {
            0x93 => {
                // STACK_GLOBAL: the module and name are the two strings on the stack.
                let n = self.pop()?;
                let m = self.pop()?;
                let g = match (m, n) {
                    (V::Str(m), V::Str(n)) => self.global(&m, &n)?,
                    _ => {
                        return Err(GuardError::Refused {
                            global: "a global whose name is computed while unpickling".into(),
                        })
                    }
                };
                self.push(g)?;
                "STACK_GLOBAL"
            }
            b'i' => {
                let m = self.line("INST")?;
                let n = self.line("INST")?;
                let (m, n) = (self.utf8(m, "INST")?, self.utf8(n, "INST")?);
                self.global(&m, &n)?;
                let items = self.pop_to_mark()?;
                self.push(V::Reduced(Seq::new(items)?))?;
                "INST"
            }
            0x82..=0x84 => {
                let width = [1, 2, 4][(op - 0x82) as usize];
                let code = self.uint(width, "EXT")?;
                return Err(GuardError::Refused {
                    global: format!("the global registered as extension code {code} (copyreg)"),
                });
            }
            b'o' => {
                let items = self.pop_to_mark()?;
                self.push(V::Reduced(Seq::new(items)?))?;
                "OBJ"
            }
            0x92 => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                self.push(V::Reduced(Seq::new(vec![cls, args, kwargs])?))?;
                "NEWOBJ_EX"
            }
            0x8c | 0x8d | b'T' | b'B' | b'C' | 0x8e | 0x96 | 0x8b => {
                let (width, name) = match op {
                    0x8c => (1, "SHORT_BINUNICODE"),
                    0x8d => (8, "BINUNICODE8"),
                    b'T' => (4, "BINSTRING"),
                    b'B' => (4, "BINBYTES"),
                    b'C' => (1, "SHORT_BINBYTES"),
                    0x8e => (8, "BINBYTES8"),
                    0x96 => (8, "BYTEARRAY8"),
                    _ => (4, "LONG4"),
                };
                let n = self.uint(width, name)?;
                let b = self.take(n, name)?;
                let v = match op {
                    0x8c | 0x8d | b'T' => V::Str(String::from_utf8_lossy(b).into()),
                    0x8b => V::Int(0),
                    _ => V::Scalar,
                };
                self.push(v)?;
                name
            }
            b'S' | b'V' | b'F' | b'L' | b'P' => {
                let name = match op {
                    b'S' => "STRING",
                    b'V' => "UNICODE",
                    b'F' => "FLOAT",
                    b'L' => "LONG",
                    _ => "PERSID",
                };
                let l = self.line(name)?;
                let v = match op {
                    b'S' => {
                        let t = l.strip_prefix(b"'").and_then(|l| l.strip_suffix(b"'"));
                        V::Str(String::from_utf8_lossy(t.unwrap_or(l)).into())
                    }
                    b'V' => V::Str(String::from_utf8_lossy(l).into()),
                    b'P' => V::Persistent(l.len()),
                    _ => V::Scalar,
                };
                self.push(v)?;
                name
            }
            b'g' | b'p' => {
                let l = self.line("GET/PUT")?;
                let i = std::str::from_utf8(l)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok());
                let Some(i) = i else {
                    return invalid(format!("byte {}: bad memo index", at - self.start));
                };
                if op == b'g' {
                    self.memo_get(i as u64)?;
                    "GET"
                } else {
                    self.memo_put(i as u64)?;
                    "PUT"
                }
            }
            0x95 => {
                let n = self.uint(8, "FRAME")?;
                if n > (self.data.len() - self.pos) as u64 {
                    return invalid(format!(
                        "byte {}: FRAME claims {n} bytes but fewer follow",
                        at - self.start
                    ));
                }
                "FRAME"
            }
            b'0' => {
                self.pop()?;
                "POP"
            }
            b'1' => {
                self.pop_to_mark()?;
                "POP_MARK"
            }
            b'2' => {
                let v = self.top()?;
                self.push(v)?;
                "DUP"
            }
            0x8f => {
                self.push(V::List(Seq::new(Vec::new())?))?;
                "EMPTY_SET"
            }
            0x90 => {
                self.pop_to_mark()?;
                "ADDITEMS"
            }
            0x91 => {
                let items = self.pop_to_mark()?;
                self.push(V::List(Seq::new(items)?))?;
                "FROZENSET"
            }
            _ => {
                return invalid(format!(
                    "byte {}: invalid pickle opcode 0x{op:02x}",
                    at - self.start
                ))
            }
        };
        self.mark_unsupported(name, at);
        Ok(())
    }

    /// burn-store's REDUCE: `OrderedDict(items)` or a tensor-rebuilding function.
    fn reduce(&mut self, callable: V, args: V) -> Result<V> {
        if let V::Class(g) = &callable {
            if g.is("collections", "OrderedDict") {
                let items = match &args {
                    V::Tuple(t) => match t.items.first() {
                        Some(V::List(l)) => Some(l.clone()),
                        _ => None,
                    },
                    V::List(l) => Some(l.clone()),
                    _ => None,
                };
                let mut m = Map::empty();
                if let Some(items) = items {
                    self.charge(2 * items.cost)?;
                    for item in &items.items {
                        if let V::List(p) | V::Tuple(p) = item {
                            if let [V::Str(k), v, ..] = &p.items[..] {
                                m.insert(k.clone(), v.clone())?;
                            }
                        }
                    }
                }
                self.charge(node())?;
                return Ok(V::Dict(Rc::new(m)));
            }
        }
        self.charge(node() + args.cost())?;
        self.rebuild_from_type_v2(vec![callable, args])
    }

    /// burn-store's `rebuild_from_type_v2` on the items of a tuple `(function, args...)`.
    fn rebuild_from_type_v2(&mut self, args: Vec<V>) -> Result<V> {
        let at = self.at();
        let g = match args.first() {
            Some(V::Class(g)) => g.clone(),
            _ => {
                return invalid(format!(
                    "byte {at}: REDUCE calls something that is not a global"
                ))
            }
        };
        let actual = if args.len() == 2 && matches!(args[1], V::Tuple(_)) {
            args[1].clone()
        } else {
            V::Tuple(Seq::new(args[1..].to_vec())?)
        };
        self.charge(actual.cost())?;
        let (module, name) = (g.module.as_str(), g.name.as_str());
        match (module, name) {
            ("torch._utils", "_rebuild_tensor_v2") => self.rebuild_tensor(actual, 5),
            ("torch._utils", "_rebuild_tensor") => self.rebuild_tensor(actual, 4),
            ("torch._tensor", "_rebuild_from_type_v2") => match actual {
                V::Tuple(t) if !t.items.is_empty() => self.rebuild_from_type_v2(t.items.clone()),
                _ => invalid(format!(
                    "byte {at}: _rebuild_from_type_v2 without arguments"
                )),
            },
            ("torch._utils", "_rebuild_parameter") => match actual {
                V::Tuple(t) => match t.items.first() {
                    Some(V::Reduced(_)) => invalid(format!(
                        "byte {at}: _rebuild_parameter of an object that is not a tensor"
                    )),
                    Some(v) => Ok(v.clone()),
                    None => invalid(format!("byte {at}: _rebuild_parameter without arguments")),
                },
                _ => invalid(format!("byte {at}: _rebuild_parameter without arguments")),
            },
            ("collections", "OrderedDict") => Ok(V::Dict(Rc::new(Map::empty()))),
            _ => invalid(format!(
                "byte {at}: REDUCE calls {module}.{name}, which does not rebuild a tensor or a dict"
            )),
        }
    }

    /// burn-store's `rebuild_tensor(_v2)` and `rebuild_tensor_impl`.
    fn rebuild_tensor(&mut self, args: V, min_args: usize) -> Result<V> {
        let at = self.at();
        let bad = |what: &str| invalid(format!("byte {at}: tensor rebuild: {what}"));
        let V::Tuple(args) = args else {
            return bad("the arguments are not a tuple");
        };
        if args.items.len() < min_args {
            return bad("too few arguments");
        }
        let pid = match &args.items[0] {
            V::PTuple(t) | V::Tuple(t) => t.clone(),
            _ => return bad("the storage is not a persistent id tuple"),
        };
        self.charge(pid.cost)?;
        let offset = match args.items[1] {
            V::Int(i) if i < 0 => return bad("negative storage offset"),
            V::Int(i) => i as u64,
            _ => 0,
        };
        let int_tuple = |v: &V| -> Option<Vec<i64>> {
            match v {
                V::Tuple(t) => t
                    .items
                    .iter()
                    .map(|x| match x {
                        V::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            }
        };
        let Some(shape) = int_tuple(&args.items[2]) else {
            return bad("the shape is not a tuple of integers");
        };
        if shape.iter().any(|&d| d < 0) {
            return bad("negative dimension");
        }
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let stride = int_tuple(&args.items[3]);
        if pid.items.len() < 3 {
            return bad("the persistent id has fewer than 3 items");
        }
        let type_name = match &pid.items[1] {
            V::Str(s) => s.to_string(),
            V::Class(g) => g.name.clone(),
            _ => return bad("the storage type is neither a string nor a class"),
        };
        let Some(dtype) = storage_dtype(&type_name) else {
            return bad(&format!("unknown storage type {type_name}"));
        };
        let storage = match &pid.items[2] {
            V::Str(s) => s.to_string(),
            _ => return bad("the storage key is not a string"),
        };
        let total = match pid.items.get(4) {
            Some(V::Int(n)) => Some(*n),
            _ => None,
        };
        if self.mode == Mode::NoData {
            return bad(
                "tensor data outside a zip or legacy-format file (the file is neither; its \
                 tensors have no data)",
            );
        }
        let Some(numel) = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
            return bad(&format!(
                "shape {shape:?} has more elements than memory can hold"
            ));
        };
        let size = dtype.size() as u64;
        let legacy_bytes = if self.mode == Mode::Legacy {
            if matches!(pid.items.get(5), Some(v) if !matches!(v, V::None)) {
                return bad("a storage view (PyTorch before 0.4) is not supported");
            }
            let elements = match total {
                Some(t) if t < 0 => return bad("negative storage size"),
                Some(t) => Some(t as u64),
                None => offset.checked_add(numel as u64),
            };
            match elements.and_then(|e| e.checked_mul(size)) {
                Some(b) if b <= usize::MAX as u64 / 2 => b,
                _ => return bad("storage size overflows"),
            }
        } else {
            0
        };
        let rec = TensorRec {
            dtype,
            storage,
            offset,
            shape,
            stride,
            numel,
            legacy_bytes,
        };
        let v = V::Tensor(Rc::new(rec));
        self.charge(v.cost())?;
        if let V::Tensor(t) = &v {
            self.tensors.push(t.clone());
        }
        Ok(v)
    }
}

// --- what burn-store returns -------------------------------------------------------------

/// Tensors with the names burn-store gives them.
type Named = Vec<(String, Rc<TensorRec>)>;

/// The tensors burn-store's `extract_tensors_with_data` returns for `root` and `key`:
/// names joined with `.`, recursing into dicts only. `None` when the key does not select a
/// dict (burn-store then fails with its own error).
fn reachable(root: &V, key: Option<&str>) -> Result<Option<Named>> {
    let V::Dict(d) = root else {
        return Ok(Some(Vec::new()));
    };
    let d = match key {
        None => d.clone(),
        Some(k) => match d.items.get(k) {
            Some(V::Dict(nested)) => nested.clone(),
            _ => return Ok(None),
        },
    };
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk(&d, &mut path, &mut out);
    let mut seen = std::collections::HashSet::new();
    for (name, _) in &out {
        if !seen.insert(name.as_str()) {
            return invalid(format!("two tensors are both named `{name}`"));
        }
    }
    Ok(Some(out))
}

fn walk(d: &Map, path: &mut Vec<Rc<str>>, out: &mut Named) {
    for (k, v) in &d.items {
        path.push(k.clone());
        match v {
            V::Dict(nested) => walk(nested, path, out),
            V::Tensor(t) => out.push((path.join("."), t.clone())),
            _ => {}
        }
        path.pop();
    }
}

/// Strides burn-store can ignore: those of a contiguous tensor (any stride on a size-1
/// dimension).
fn contiguous(shape: &[usize], stride: &[i64]) -> bool {
    if stride.len() != shape.len() {
        return false;
    }
    let mut expected: u64 = 1;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s as u64 != expected {
            return false;
        }
        expected = expected.saturating_mul(d as u64);
    }
    true
}

/// Checks one reachable tensor against the bytes its storage holds.
fn check_tensor(name: &str, t: &TensorRec, storage_bytes: u64, where_: &str) -> Result<()> {
    let Some(stride) = &t.stride else {
        return invalid(format!(
            "tensor `{name}`: its stride is not a tuple of integers"
        ));
    };
    if !contiguous(&t.shape, stride) {
        return invalid(format!(
            "tensor `{name}` is not contiguous (shape {:?}, stride {stride:?}); burn-store would \
             read its elements in the wrong order. Save `tensor.contiguous()` instead",
            t.shape
        ));
    }
    let size = t.dtype.size() as u64;
    let end = t
        .offset
        .checked_add(t.numel as u64)
        .and_then(|e| e.checked_mul(size));
    match end {
        Some(end) if end <= storage_bytes => Ok(()),
        _ => invalid(format!(
            "tensor `{name}` ({:?}, shape {:?}, offset {}) needs {} bytes of storage {where_} \
             but it holds {storage_bytes} (truncated or corrupt file)",
            t.dtype,
            t.shape,
            t.offset,
            end.map_or("more than 2^64".to_string(), |e| e.to_string())
        )),
    }
}

fn checked_map(tensors: Named) -> Checked {
    Checked {
        tensors: tensors
            .into_iter()
            .map(|(name, t)| {
                (
                    name,
                    CheckedTensor {
                        dtype: t.dtype,
                        shape: t.shape.clone(),
                        numel: t.numel,
                    },
                )
            })
            .collect(),
    }
}

// --- the zip format ----------------------------------------------------------------------

fn zip_error(e: impl std::fmt::Display) -> GuardError {
    GuardError::Invalid(format!("zip archive: {e}"))
}

/// A record burn-store may read must be stored uncompressed (as torch.save writes every
/// record) and lie inside the file: its claimed size is then its real size.
fn check_record<R: Read>(f: &zip::read::ZipFile<'_, R>, file_len: u64) -> Result<()> {
    let name = f.name();
    if f.compression() != zip::CompressionMethod::Stored {
        return invalid(format!(
            "zip record {name} is compressed ({}); torch.save stores records uncompressed",
            f.compression()
        ));
    }
    if f.size() != f.compressed_size() {
        return invalid(format!(
            "zip record {name} claims {} bytes but stores {}",
            f.size(),
            f.compressed_size()
        ));
    }
    match f.data_start().and_then(|s| s.checked_add(f.size())) {
        Some(end) if end <= file_len => Ok(()),
        _ => invalid(format!(
            "zip record {name} ({} bytes) extends past the end of the file (truncated?)",
            f.size()
        )),
    }
}

fn check_zip<R: Read + Seek>(
    mut zip: zip::ZipArchive<R>,
    file_len: u64,
    key: Option<&str>,
) -> Result<Checked> {
    let mut names = Vec::with_capacity(zip.len().min(1 << 16));
    for i in 0..zip.len() {
        let f = zip.by_index(i).map_err(zip_error)?;
        check_record(&f, file_len)?;
        names.push(f.name().to_string());
    }
    // The pickle, chosen as burn-store chooses it.
    let pkl = ["data.pkl", "archive/data.pkl"]
        .into_iter()
        .map(str::to_string)
        .find(|n| zip.by_name(n).is_ok())
        .or_else(|| names.iter().find(|n| n.ends_with("data.pkl")).cloned());
    let Some(pkl) = pkl else {
        return invalid("the zip archive has no data.pkl (not a torch.save file)");
    };
    let mut data = Vec::new();
    zip.by_name(&pkl)
        .and_then(|mut f| f.read_to_end(&mut data).map_err(Into::into))
        .map_err(|e| GuardError::Invalid(format!("zip record {pkl}: {e}")))?;
    let mut budget = Budget::new(data.len());
    let mut vm = Vm::new(&data, 0, &pkl, &mut budget, Mode::Zip);
    let root = vm.run()?;
    drop(vm);
    let Some(tensors) = reachable(&root, key)? else {
        return Ok(Checked::default());
    };
    // burn-store's record for a storage key: `data/<key>` if the archive has it, else the
    // first data record whose last path segment is the key.
    let is_data = |n: &str| {
        (n.starts_with("data/") || n.contains("/data/"))
            && !n.ends_with(".pkl")
            && !n.ends_with('/')
    };
    let mut verified: HashMap<String, u64> = HashMap::new();
    for (name, t) in &tensors {
        if t.numel == 0 {
            continue;
        }
        let k = &t.storage;
        let exact = format!("data/{k}");
        let record = if names.contains(&exact) {
            exact
        } else {
            let suffix = format!("/data/{k}");
            names
                .iter()
                .filter(|n| is_data(n))
                .find(|n| {
                    n.ends_with(&suffix)
                        || (n.contains("/data/") && n.rsplit('/').next() == Some(k.as_str()))
                })
                .cloned()
                .unwrap_or(exact)
        };
        let bytes = match verified.get(&record) {
            Some(&b) => b,
            None => {
                let b = match zip.by_name(&record) {
                    Ok(mut f) => {
                        check_record(&f, file_len)?;
                        let size = f.size();
                        // Reading through checks the CRC: burn-store would load zeros for a
                        // record that fails it.
                        std::io::copy(&mut f, &mut std::io::sink()).map_err(|e| {
                            GuardError::Invalid(format!(
                                "tensor `{name}`: zip record {record} is corrupt: {e}"
                            ))
                        })?;
                        size
                    }
                    Err(_) => {
                        return invalid(format!(
                            "tensor `{name}`: its storage `{k}` has no record {record} in the \
                             archive (truncated or corrupt file)"
                        ))
                    }
                };
                verified.insert(record.clone(), b);
                b
            }
        };
        check_tensor(name, t, bytes, &format!("record {record}"))?;
    }
    Ok(checked_map(tensors))
}

// --- the legacy format -------------------------------------------------------------------

fn check_legacy(bytes: &[u8], key: Option<&str>) -> Result<Checked> {
    // burn-store: three header pickles, the weights (skipped first), the storage keys, then
    // the storages, each an int64 element count and the data.
    let mut budget = Budget::new(bytes.len());
    let mut pos = 0;
    for what in [
        "legacy format, magic-number pickle",
        "legacy format, protocol pickle",
        "legacy format, sys_info pickle",
    ] {
        let mut vm = Vm::new(bytes, pos, what, &mut budget, Mode::NoData);
        vm.run()?;
        pos = vm.pos;
    }
    let mut vm = Vm::new(
        bytes,
        pos,
        "legacy format, weights pickle",
        &mut budget,
        Mode::Legacy,
    );
    let root = vm.run()?;
    let (records, main_end) = (std::mem::take(&mut vm.tensors), vm.pos);
    drop(vm);
    let mut vm = Vm::new(
        bytes,
        main_end,
        "legacy format, storage-key pickle",
        &mut budget,
        Mode::NoData,
    );
    let keys_obj = vm.run()?;
    let data_start = vm.pos as u64;
    drop(vm);
    let keys: Vec<Rc<str>> = match keys_obj {
        V::List(l) => l
            .items
            .iter()
            .filter_map(|v| match v {
                V::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => return invalid("legacy format: the storage-key pickle is not a list"),
    };
    let Some(tensors) = reachable(&root, key)? else {
        return Ok(Checked::default());
    };
    if records.is_empty() {
        return Ok(checked_map(tensors));
    }
    // burn-store records, per storage key, the largest size a tensor implies, and fixes the
    // storage map the moment every listed key has one.
    let mut usage: HashMap<&str, u64> = HashMap::new();
    let mut dtype: HashMap<&str, DType> = HashMap::new();
    let mut frozen: Option<HashMap<&str, u64>> = None;
    for r in &records {
        if let Some(&d) = dtype.get(r.storage.as_str()) {
            if d != r.dtype {
                return invalid(format!(
                    "legacy format: storage `{}` is used as both {d:?} and {:?}",
                    r.storage, r.dtype
                ));
            }
        }
        dtype.insert(&r.storage, r.dtype);
        let u = usage.entry(&r.storage).or_insert(0);
        *u = (*u).max(r.legacy_bytes);
        if frozen.is_none() && !keys.is_empty() && keys.iter().all(|k| usage.contains_key(&**k)) {
            frozen = Some(keys.iter().map(|k| (&**k, usage[&**k])).collect());
        }
    }
    let Some(frozen) = frozen else {
        return invalid(
            "legacy format: the storage-key list names storages no tensor uses (burn-store \
             cannot locate the data)",
        );
    };
    // The storages as written: each key's element count and bytes, in list order.
    let mut seen = std::collections::HashSet::new();
    let mut at = data_start;
    let file_len = bytes.len() as u64;
    for k in &keys {
        if !seen.insert(&**k) {
            return invalid(format!("legacy format: storage `{k}` is listed twice"));
        }
        if at + 8 > file_len {
            return invalid(format!(
                "legacy format: storage `{k}` is missing (truncated file)"
            ));
        }
        let count = u64::from_le_bytes(bytes[at as usize..at as usize + 8].try_into().expect("8"));
        let size = dtype[&**k].size() as u64;
        let written = count.checked_mul(size).filter(|&b| b <= file_len - at - 8);
        let Some(written) = written else {
            return invalid(format!(
                "legacy format: storage `{k}` claims {count} elements but the file ends first \
                 (truncated or corrupt)"
            ));
        };
        if written != frozen[&**k] {
            return invalid(format!(
                "legacy format: storage `{k}` holds {written} bytes but its tensors describe \
                 {} (burn-store would read the wrong bytes)",
                frozen[&**k]
            ));
        }
        at += 8 + written;
    }
    for (name, t) in &tensors {
        if t.numel == 0 {
            continue;
        }
        // burn-store looks a storage up by the last `/`-segment of `data/<key>`.
        let lookup = t.storage.rsplit('/').next().unwrap_or(&t.storage);
        let Some(&bytes) = frozen.get(lookup) else {
            return invalid(format!(
                "tensor `{name}`: its storage `{}` is not in the storage-key list",
                t.storage
            ));
        };
        check_tensor(name, t, bytes, &format!("`{}`", t.storage))?;
    }
    Ok(checked_map(tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn torch_files_pass_within_budget() {
        for f in [
            "parity/resnet18_tv_f16.pth",
            "parity/wrn28_2_oe.pth",
            "parity/vit_dino_d2.pth",
            "parity/vit_dino_d2_full.pth",
            "untrusted/tiny_zip.pth",
        ] {
            let path = fixture(f);
            let checked = check(&path, None).unwrap_or_else(|e| panic!("{f}: {e:?}"));
            assert!(!checked.tensors.is_empty(), "{f}");
            // The budget a torch.save pickle uses, per pickle byte.
            let zip = zip::ZipArchive::new(File::open(&path).unwrap()).unwrap();
            let pkl = zip
                .file_names()
                .find(|n| n.ends_with("data.pkl"))
                .unwrap()
                .to_string();
            let mut zip = zip;
            let mut data = Vec::new();
            zip.by_name(&pkl).unwrap().read_to_end(&mut data).unwrap();
            let mut budget = Budget::new(data.len());
            Vm::new(&data, 0, "t", &mut budget, Mode::Zip)
                .run()
                .unwrap();
            let per_byte = budget.used / data.len() as u64;
            println!(
                "{f}: {per_byte} budget bytes per pickle byte, node {}",
                node()
            );
            assert!(
                per_byte * 3 < BUDGET_PER_BYTE,
                "{f}: {per_byte} budget bytes per pickle byte"
            );
        }
        let legacy = check(&fixture("untrusted/tiny_legacy.pth"), None).unwrap();
        assert_eq!(legacy.tensors.len(), 7);
    }

    #[test]
    fn contiguity() {
        assert!(contiguous(&[2, 3], &[3, 1]));
        assert!(contiguous(&[], &[]));
        assert!(contiguous(&[1, 3], &[0, 1]));
        assert!(!contiguous(&[2, 3], &[1, 2]));
        assert!(!contiguous(&[2, 3], &[3]));
    }

    #[test]
    fn memo_bombs_hit_the_budget() {
        // An empty list, then repeatedly: two references to the last one in a new list.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for i in 0..60u8 {
            p.extend_from_slice(&[b'(', b'h', i, b'h', i, b'l', b'q', i + 1]);
        }
        p.push(b'.');
        let mut budget = Budget::new(p.len());
        let err = Vm::new(&p, 0, "bomb", &mut budget, Mode::NoData)
            .run()
            .unwrap_err();
        assert!(matches!(err, GuardError::Invalid(m) if m.contains("MiB")));
    }
}
