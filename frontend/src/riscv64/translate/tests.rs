//! Translator tests: real RISC-V machine code run through the interpreter-free path of the
//! engine would need the whole stack; these check the IR the translator emits for the edge
//! cases of the ISA by running blocks with `ir::interp` on a CPU state.
