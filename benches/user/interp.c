/* An indirect-branch-heavy bytecode interpreter: a switch over one opcode byte per
 * instruction (GCC emits a jump table: one indirect jump per VM instruction, whose target
 * changes nearly every time). This is the case where a JIT's lookup of indirect-jump
 * targets decides the speed. The VM has 16 64-bit registers, 64 Ki words of memory and
 * 4-byte instructions (op, a, b, c); its program runs Collatz sequences, a sieve of
 * Eratosthenes and a hash loop, each with its own mix of opcodes. */
#include "common.h"

enum op {
    HALT, LI,   /* r[a] = imm16 (zero-extended b:c) */
    MOV, ADD, SUB, MUL, AND, XOR, SHR, SHL, /* r[a] = r[a] op r[b] */
    ADDI,       /* r[a] += (int8_t)b */
    LD, ST,     /* r[a] = mem[r[b] & mask] / mem[r[b] & mask] = r[a] */
    JMP,        /* pc = b:c (instruction index) */
    JNZ, JZ,    /* if r[a] (!=|==) 0: pc = b:c */
    JLT,        /* if r[a] < r[15]: pc = b:c */
    ODD,        /* r[a] = r[b] & 1 */
};

#define MEM_WORDS 65536u

/* The VM program is assembled at start-up by this small assembler, with jump targets
 * patched in once known (instruction indices, not byte offsets). */
struct asm_state {
    uint8_t code[4096];
    unsigned n;
};

static unsigned emit(struct asm_state *s, uint8_t op, uint8_t a, uint8_t b, uint8_t c)
{
    unsigned at = s->n / 4;
    s->code[s->n++] = op;
    s->code[s->n++] = a;
    s->code[s->n++] = b;
    s->code[s->n++] = c;
    return at;
}

static unsigned here(const struct asm_state *s) { return s->n / 4; }

static void patch(struct asm_state *s, unsigned insn, unsigned target)
{
    s->code[insn * 4 + 2] = (uint8_t)(target >> 8);
    s->code[insn * 4 + 3] = (uint8_t)target;
}

static void li(struct asm_state *s, uint8_t r, unsigned v)
{
    emit(s, LI, r, (uint8_t)(v >> 8), (uint8_t)v);
}

static void assemble(struct asm_state *s, unsigned collatz_n, unsigned sieve_n, unsigned hash_n)
{
    unsigned outer, inner, odd, done, fix;
    /* collatz: r2 = total steps of n = collatz_n..1 */
    li(s, 1, collatz_n);
    li(s, 2, 0);
    li(s, 7, 1);
    outer = here(s);
    emit(s, MOV, 3, 1, 0);
    inner = here(s);
    emit(s, MOV, 5, 3, 0);
    emit(s, ADDI, 5, 0xff, 0);
    done = emit(s, JZ, 5, 0, 0);
    emit(s, ADDI, 2, 1, 0);
    emit(s, ODD, 6, 3, 0);
    odd = emit(s, JNZ, 6, 0, 0);
    emit(s, SHR, 3, 7, 0);
    emit(s, JMP, 0, (uint8_t)(inner >> 8), (uint8_t)inner);
    patch(s, odd, here(s));
    emit(s, MOV, 8, 3, 0);
    emit(s, ADD, 3, 3, 0);
    emit(s, ADD, 3, 8, 0);
    emit(s, ADDI, 3, 1, 0);
    emit(s, JMP, 0, (uint8_t)(inner >> 8), (uint8_t)inner);
    patch(s, done, here(s));
    emit(s, ADDI, 1, 0xff, 0);
    emit(s, JNZ, 1, (uint8_t)(outer >> 8), (uint8_t)outer);

    /* sieve: count primes below sieve_n in r10 (mem[i] = 1 marks composite) */
    li(s, 15, sieve_n);
    li(s, 9, 2);            /* i */
    li(s, 10, 0);
    li(s, 11, 1);           /* constant 1 */
    outer = here(s);
    emit(s, LD, 12, 9, 0);
    fix = emit(s, JNZ, 12, 0, 0);   /* composite: skip */
    emit(s, ADDI, 10, 1, 0);
    emit(s, MOV, 13, 9, 0);
    emit(s, ADD, 13, 9, 0);         /* j = 2i */
    inner = here(s);
    done = emit(s, JLT, 13, 0, 0);  /* j < n: mark */
    emit(s, JMP, 0, 0, 0);          /* patched: to next i */
    unsigned jmp_next = here(s) - 1;
    patch(s, done, here(s));
    emit(s, ST, 11, 13, 0);
    emit(s, ADD, 13, 9, 0);
    emit(s, JMP, 0, (uint8_t)(inner >> 8), (uint8_t)inner);
    patch(s, fix, here(s));
    patch(s, jmp_next, here(s));
    emit(s, ADDI, 9, 1, 0);
    emit(s, JLT, 9, (uint8_t)(outer >> 8), (uint8_t)outer);

    /* hash: r14 = fold of mem[] and a multiplicative hash, hash_n rounds */
    li(s, 1, hash_n);
    li(s, 14, 0x1234);
    li(s, 7, 13);
    li(s, 8, 0x9e37);
    outer = here(s);
    emit(s, MUL, 14, 8, 0);
    emit(s, MOV, 12, 14, 0);
    emit(s, SHR, 12, 7, 0);
    emit(s, XOR, 14, 12, 0);
    emit(s, LD, 12, 14, 0);
    emit(s, ADD, 14, 12, 0);
    emit(s, ST, 14, 1, 0);
    emit(s, ADDI, 1, 0xff, 0);
    emit(s, JNZ, 1, (uint8_t)(outer >> 8), (uint8_t)outer);
    emit(s, HALT, 0, 0, 0);
}

static uint64_t run(const uint8_t *code, uint64_t *mem, uint64_t *r)
{
    unsigned pc = 0;
    uint64_t executed = 0;
    for (;;) {
        const uint8_t *in = code + pc * 4;
        uint8_t a = in[1], b = in[2], c = in[3];
        unsigned target = ((unsigned)b << 8) | c;
        pc++;
        executed++;
        switch (in[0]) {
        case HALT: return executed;
        case LI: r[a] = target; break;
        case MOV: r[a] = r[b]; break;
        case ADD: r[a] += r[b]; break;
        case SUB: r[a] -= r[b]; break;
        case MUL: r[a] *= r[b]; break;
        case AND: r[a] &= r[b]; break;
        case XOR: r[a] ^= r[b]; break;
        case SHR: r[a] >>= (r[b] & 63); break;
        case SHL: r[a] <<= (r[b] & 63); break;
        case ADDI: r[a] += (uint64_t)(int64_t)(int8_t)b; break;
        case LD: r[a] = mem[r[b] & (MEM_WORDS - 1)]; break;
        case ST: mem[r[b] & (MEM_WORDS - 1)] = r[a]; break;
        case JMP: pc = target; break;
        case JNZ: if (r[a]) pc = target; break;
        case JZ: if (!r[a]) pc = target; break;
        case JLT: if (r[a] < r[15]) pc = target; break;
        case ODD: r[a] = r[b] & 1; break;
        default:
            fprintf(stderr, "bad opcode %u at %u\n", in[0], pc - 1);
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    unsigned scale = scale_arg(argc, argv, 12);
    static struct asm_state s;
    static uint64_t mem[MEM_WORDS];
    uint64_t h = 0;
    assemble(&s, 20000, 60000, 30000);
    for (unsigned round = 0; round < scale; round++) {
        uint64_t r[16] = { 0 };
        for (unsigned i = 0; i < MEM_WORDS; i++)
            mem[i] = 0;
        uint64_t executed = run(s.code, mem, r);
        h = mix64(h, executed);
        for (int i = 0; i < 16; i++)
            h = mix64(h, r[i]);
    }
    print_checksum("interp", h);
    return 0;
}
