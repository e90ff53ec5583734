//! A translation block in IR form: the temps it uses and its ops in order.

use std::sync::Arc;

use crate::op::Op;
use crate::types::{GlobalDef, Temp, TempInfo, TempKind, Type};

/// The IR of one translation block.
///
/// Temp 0 is [`Temp::ENV`]; temps `1..=globals.len()` are the globals in table order; the
/// rest are locals, scratch temps and interned constants. The guest code of the block is the
/// ops between consecutive `InsnStart`s; the last op is a terminal.
#[derive(Debug, Clone)]
pub struct Block {
    /// The frontend's globals (the CPU-state fields that IR code may name directly).
    pub globals: Arc<[GlobalDef]>,
    /// The type of guest addresses: I32 for 32-bit guests (zero-extended by the softmmu).
    pub addr_type: Type,
    /// Every temp of the block.
    pub temps: Vec<TempInfo>,
    /// The ops, in execution order.
    pub ops: Vec<Op>,
    /// Labels are `Label(0)..Label(num_labels)`.
    pub num_labels: u32,
}

impl Block {
    /// An empty block with the temps for `ENV` and the globals.
    pub fn new(globals: Arc<[GlobalDef]>, addr_type: Type) -> Block {
        let mut temps = Vec::with_capacity(globals.len() + 64);
        temps.push(TempInfo {
            ty: Type::I64,
            kind: TempKind::Env,
        });
        for (index, g) in globals.iter().enumerate() {
            temps.push(TempInfo {
                ty: g.ty,
                kind: TempKind::Global {
                    offset: g.offset,
                    index: index as u32,
                },
            });
        }
        Block {
            globals,
            addr_type,
            temps,
            ops: Vec::with_capacity(256),
            num_labels: 0,
        }
    }

    /// The temp of global number `index` (its position in the globals table).
    pub fn global(&self, index: usize) -> Temp {
        assert!(index < self.globals.len(), "global {index} out of range");
        Temp(index as u32 + 1)
    }

    /// Type and kind of `t`.
    pub fn temp(&self, t: Temp) -> TempInfo {
        self.temps[t.index()]
    }

    /// The type of `t`.
    pub fn ty(&self, t: Temp) -> Type {
        self.temps[t.index()].ty
    }

    /// The value of `t` if it is a constant.
    pub fn const_value(&self, t: Temp) -> Option<u64> {
        match self.temps[t.index()].kind {
            TempKind::Const(v) => Some(v),
            _ => None,
        }
    }

    /// Adds a temp and returns it.
    pub fn add_temp(&mut self, ty: Type, kind: TempKind) -> Temp {
        let t = Temp(self.temps.len() as u32);
        let kind = match kind {
            TempKind::Const(v) => TempKind::Const(v & ty.mask()),
            k => k,
        };
        self.temps.push(TempInfo { ty, kind });
        t
    }

    /// The `(pc, extra)` of each `InsnStart`, in order: index `i` is instruction `i`, as
    /// recorded in [`crate::abi::EnvHeader::insn_index`].
    pub fn insn_starts(&self) -> Vec<(u64, u64)> {
        self.ops
            .iter()
            .filter_map(|op| match *op {
                Op::InsnStart { pc, extra } => Some((pc, extra)),
                _ => None,
            })
            .collect()
    }

    /// Number of ops that are not `InsnStart` markers.
    pub fn op_count(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| !matches!(op, Op::InsnStart { .. }))
            .count()
    }
}
