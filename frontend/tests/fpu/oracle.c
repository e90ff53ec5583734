/*
 * Reference results for tern's RISC-V F/D helpers: runs every F/D arithmetic instruction on a
 * table of edge-case operands (and on generated ones) under each dynamic rounding mode, and
 * prints one line per operation:
 *
 *     <op> <rm> <a> <b> <c> <result> <fflags>
 *
 * all in hex, register bits as the instruction sees and writes them (singles NaN-boxed or, to
 * test unboxing, deliberately not). Built with riscv64-linux-gnu-gcc -static and run under
 * qemu-riscv64 by frontend/tests/riscv64_fpu.rs, which recomputes each line.
 */
#include <stdint.h>
#include <stdio.h>

typedef uint64_t u64;

static void set_rm(u64 rm) { __asm__ volatile("fsrm %0" : : "r"(rm)); }
static void clear_flags(void) { __asm__ volatile("fsflags x0"); }
static u64 get_flags(void)
{
	u64 f;
	__asm__ volatile("frflags %0" : "=r"(f));
	return f;
}

/* f = op(f, f) */
#define FFF(fn, insn)                                                              \
	static u64 fn(u64 a, u64 b, u64 c)                                         \
	{                                                                          \
		u64 r;                                                             \
		(void)c;                                                           \
		__asm__ volatile("fmv.d.x ft0, %1\n\tfmv.d.x ft1, %2\n\t" insn     \
				 " ft2, ft0, ft1\n\tfmv.x.d %0, ft2"               \
				 : "=r"(r)                                         \
				 : "r"(a), "r"(b)                                  \
				 : "ft0", "ft1", "ft2");                           \
		return r;                                                          \
	}
/* f = op(f, f, f) */
#define FFFF(fn, insn)                                                             \
	static u64 fn(u64 a, u64 b, u64 c)                                         \
	{                                                                          \
		u64 r;                                                             \
		__asm__ volatile("fmv.d.x ft0, %1\n\tfmv.d.x ft1, %2\n\t"          \
				 "fmv.d.x ft2, %3\n\t" insn                        \
				 " ft3, ft0, ft1, ft2\n\tfmv.x.d %0, ft3"          \
				 : "=r"(r)                                         \
				 : "r"(a), "r"(b), "r"(c)                          \
				 : "ft0", "ft1", "ft2", "ft3");                    \
		return r;                                                          \
	}
/* f = op(f) */
#define FF(fn, insn)                                                               \
	static u64 fn(u64 a, u64 b, u64 c)                                         \
	{                                                                          \
		u64 r;                                                             \
		(void)b;                                                           \
		(void)c;                                                           \
		__asm__ volatile("fmv.d.x ft0, %1\n\t" insn                        \
				 " ft2, ft0\n\tfmv.x.d %0, ft2"                    \
				 : "=r"(r)                                         \
				 : "r"(a)                                          \
				 : "ft0", "ft2");                                  \
		return r;                                                          \
	}
/* x = op(f, f) */
#define XFF(fn, insn)                                                              \
	static u64 fn(u64 a, u64 b, u64 c)                                         \
	{                                                                          \
		u64 r;                                                             \
		(void)c;                                                           \
		__asm__ volatile("fmv.d.x ft0, %1\n\tfmv.d.x ft1, %2\n\t" insn     \
				 " %0, ft0, ft1"                                   \
				 : "=r"(r)                                         \
				 : "r"(a), "r"(b)                                  \
				 : "ft0", "ft1");                                  \
		return r;                                                          \
	}
/* x = op(f) */
#define XF(fn, insn)                                                               \
	static u64 fn(u64 a, u64 b, u64 c)                                         \
	{                                                                          \
		u64 r;                                                             \
		(void)b;                                                           \
		(void)c;                                                           \
		__asm__ volatile("fmv.d.x ft0, %1\n\t" insn " %0, ft0"             \
				 : "=r"(r)                                         \
				 : "r"(a)                                          \
				 : "ft0");                                         \
		return r;                                                          \
	}
/* f = op(x) */
#define FX(fn, insn)                                                               \
	static u64 fn(u64 a, u64 b, u64 c)                                         \
	{                                                                          \
		u64 r;                                                             \
		(void)b;                                                           \
		(void)c;                                                           \
		__asm__ volatile(insn " ft2, %1\n\tfmv.x.d %0, ft2"                \
				 : "=r"(r)                                         \
				 : "r"(a)                                          \
				 : "ft2");                                         \
		return r;                                                          \
	}

#define PREC(S, s)                                                                 \
	FFF(fadd_##s, "fadd." #s)                                                  \
	FFF(fsub_##s, "fsub." #s)                                                  \
	FFF(fmul_##s, "fmul." #s)                                                  \
	FFF(fdiv_##s, "fdiv." #s)                                                  \
	FF(fsqrt_##s, "fsqrt." #s)                                                 \
	FFFF(fmadd_##s, "fmadd." #s)                                               \
	FFFF(fmsub_##s, "fmsub." #s)                                               \
	FFFF(fnmsub_##s, "fnmsub." #s)                                             \
	FFFF(fnmadd_##s, "fnmadd." #s)                                             \
	FFF(fmin_##s, "fmin." #s)                                                  \
	FFF(fmax_##s, "fmax." #s)                                                  \
	FFF(fsgnj_##s, "fsgnj." #s)                                                \
	FFF(fsgnjn_##s, "fsgnjn." #s)                                              \
	FFF(fsgnjx_##s, "fsgnjx." #s)                                              \
	XFF(feq_##s, "feq." #s)                                                    \
	XFF(flt_##s, "flt." #s)                                                    \
	XFF(fle_##s, "fle." #s)                                                    \
	XF(fclass_##s, "fclass." #s)                                               \
	XF(fcvt_w_##s, "fcvt.w." #s)                                               \
	XF(fcvt_wu_##s, "fcvt.wu." #s)                                             \
	XF(fcvt_l_##s, "fcvt.l." #s)                                               \
	XF(fcvt_lu_##s, "fcvt.lu." #s)                                             \
	FX(fcvt_##s##_w, "fcvt." #s ".w")                                          \
	FX(fcvt_##s##_wu, "fcvt." #s ".wu")                                        \
	FX(fcvt_##s##_l, "fcvt." #s ".l")                                          \
	FX(fcvt_##s##_lu, "fcvt." #s ".lu")

PREC(S, s)
PREC(D, d)
FF(fcvt_s_d, "fcvt.s.d")
FF(fcvt_d_s, "fcvt.d.s")

typedef u64 (*op_fn)(u64, u64, u64);

#define BOX(x) (0xffffffff00000000ull | (u64)(x))

static const u64 dvals[] = {
	0x0000000000000000, 0x8000000000000000, /* +-0 */
	0x3ff0000000000000, 0xbff0000000000000, /* +-1 */
	0x3ff8000000000000, 0x4000000000000000, 0x4008000000000000, /* 1.5 2 3 */
	0x3fe0000000000000, 0xbfe0000000000000, /* +-0.5 */
	0x4004000000000000, 0xc004000000000000, 0x400c000000000000, /* 2.5 -2.5 3.5 */
	0x0000000000000001, 0x800fffffffffffff, 0x0008000000000000, /* subnormals */
	0x0010000000000000, 0x8010000000000000, 0x0010000000000001, /* min normals */
	0x7fefffffffffffff, 0xffefffffffffffff, /* +-max */
	0x7ff0000000000000, 0xfff0000000000000, /* +-inf */
	0x7ff8000000000000, 0xfff8000012345678, /* qNaN */
	0x7ff0000000000001, 0xfff4000000000000, /* sNaN */
	0x3ff0000000000001, 0x3fefffffffffffff, 0x3ca0000000000000, /* 1+ulp 1-ulp/2 2^-53 */
	0x3fd5555555555555, 0x3fb999999999999a, /* 1/3 0.1 */
	0x7e37e43c8800759c, 0x01a56e1fc2f8f359, /* 1e300 1e-300 */
	0x41dfffffffe00000, 0x41e0000000000000, 0xc1e0000000000000, /* 2^31-.5 2^31 -2^31 */
	0xc1e0000000200000, 0x41f0000000000000, 0x41efffffffff0000, /* -2^31-1 2^32 2^32-.5 */
	0x43e0000000000000, 0xc3e0000000000000, 0x43f0000000000000, /* 2^63 -2^63 2^64 */
	0x43efffffffffffff, 0xc3e0000000000001, 0x3fdfffffffffffff, /* <2^64 <-2^63 <.5 */
	0x3ff0000010000000, 0x3ff0000030000000, /* single ties at 1 */
	0x380ffffff0000000, 0x36a0000000000000, 0x3690000000000000, /* single tiny */
	0x47efffffe0000000, 0x47effffff0000000, 0xc7effffff0000000, /* single max, max+.5ulp */
	0x3810000000000000, 0x3e70000000000000, /* 2^-126 2^-24 */
};

static const u64 svals[] = {
	BOX(0x00000000), BOX(0x80000000), BOX(0x3f800000), BOX(0xbf800000),
	BOX(0x3fc00000), BOX(0x40000000), BOX(0x40400000), BOX(0x3f000000),
	BOX(0xbf000000), BOX(0x40200000), BOX(0xc0200000), BOX(0x40600000),
	BOX(0x00000001), BOX(0x807fffff), BOX(0x00400000), BOX(0x00800000),
	BOX(0x80800000), BOX(0x00800001), BOX(0x7f7fffff), BOX(0xff7fffff),
	BOX(0x7f800000), BOX(0xff800000), BOX(0x7fc00000), BOX(0xffc12345),
	BOX(0x7f800001), BOX(0xffa00000), BOX(0x3f800001), BOX(0x3f7fffff),
	BOX(0x33800000), BOX(0x3eaaaaab), BOX(0x3dcccccd),
	BOX(0x4effffff), BOX(0x4f000000), BOX(0xcf000000), BOX(0xcf000001),
	BOX(0x4f800000), BOX(0x4f7fffff), BOX(0x5f000000), BOX(0xdf000000),
	BOX(0x5f800000), BOX(0x5f7fffff), BOX(0x3effffff), BOX(0x34000000),
	BOX(0x7effffff), BOX(0x0ff00000),
	0x000000003f800000, 0xfffffffe3f800000, 0x7fffffff7fc00000, /* not NaN-boxed */
};

static const u64 ivals[] = {
	0, 1, (u64)-1, 2, 3, (1 << 24) + 1, (1 << 24) + 3, (1ull << 53) + 1,
	(1ull << 53) + 3, 0x7fffffff, 0xffffffff80000000, 0x80000000, 0xffffffff,
	0x100000001, 0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff,
	0x7ffffe00, 0x7fffffc0, 0xfffffffffffffc01, 0x0123456789abcdef,
	0xfedcba9876543210, 0x00000000ffffff81, 0x20000000000003ff, 0x4000000000000400,
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void emit(const char *name, op_fn fn, u64 rm, u64 a, u64 b, u64 c)
{
	set_rm(rm);
	clear_flags();
	u64 r = fn(a, b, c);
	u64 f = get_flags();
	printf("%s %llx %llx %llx %llx %llx %llx\n", name, (unsigned long long)rm,
	       (unsigned long long)a, (unsigned long long)b, (unsigned long long)c,
	       (unsigned long long)r, (unsigned long long)f);
}

/* xorshift64*, as in the Rust unit tests. */
static u64 rng_state = 0x9e3779b97f4a7c15ull;
static u64 rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* An operand with exponent and significand drawn towards the edges. */
static u64 operand(int single)
{
	unsigned eb = single ? 8 : 11, fb = single ? 23 : 52;
	u64 r = rnd();
	u64 sign = (r & 1) << (eb + fb), emax = (1ull << eb) - 1, e;
	switch ((r >> 1) % 8) {
	case 0: e = 0; break;
	case 1: e = 1 + (r >> 8) % 3; break;
	case 2: e = emax - 1 - (r >> 8) % 3; break;
	case 3: e = emax; break;
	case 4: e = emax / 2 + (r >> 8) % 8 - 4; break;
	default: e = (r >> 8) % emax;
	}
	u64 mask = (1ull << fb) - 1, fr;
	switch ((r >> 4) % 5) {
	case 0: fr = 0; break;
	case 1: fr = 1ull << ((r >> 20) % fb); break;
	case 2: fr = mask; break;
	case 3: fr = mask ^ (1ull << ((r >> 20) % fb)); break;
	default: fr = rnd() & mask;
	}
	u64 x = sign | (e << fb) | fr;
	return single ? BOX(x) : x;
}

struct op {
	const char *name;
	op_fn fn;
	int arity; /* operands */
	int single; /* operand table: 1 singles, 0 doubles, 2 integers */
	int rounds; /* depends on the rounding mode */
};

#define OPS(s, single)                                                             \
	{ "fadd." #s, fadd_##s, 2, single, 1 }, { "fsub." #s, fsub_##s, 2, single, 1 }, \
	{ "fmul." #s, fmul_##s, 2, single, 1 }, { "fdiv." #s, fdiv_##s, 2, single, 1 }, \
	{ "fsqrt." #s, fsqrt_##s, 1, single, 1 },                                   \
	{ "fmadd." #s, fmadd_##s, 3, single, 1 }, { "fmsub." #s, fmsub_##s, 3, single, 1 }, \
	{ "fnmsub." #s, fnmsub_##s, 3, single, 1 },                                 \
	{ "fnmadd." #s, fnmadd_##s, 3, single, 1 },                                 \
	{ "fmin." #s, fmin_##s, 2, single, 0 }, { "fmax." #s, fmax_##s, 2, single, 0 }, \
	{ "fsgnj." #s, fsgnj_##s, 2, single, 0 },                                   \
	{ "fsgnjn." #s, fsgnjn_##s, 2, single, 0 },                                 \
	{ "fsgnjx." #s, fsgnjx_##s, 2, single, 0 },                                 \
	{ "feq." #s, feq_##s, 2, single, 0 }, { "flt." #s, flt_##s, 2, single, 0 },    \
	{ "fle." #s, fle_##s, 2, single, 0 }, { "fclass." #s, fclass_##s, 1, single, 0 }, \
	{ "fcvt.w." #s, fcvt_w_##s, 1, single, 1 },                                 \
	{ "fcvt.wu." #s, fcvt_wu_##s, 1, single, 1 },                               \
	{ "fcvt.l." #s, fcvt_l_##s, 1, single, 1 },                                 \
	{ "fcvt.lu." #s, fcvt_lu_##s, 1, single, 1 },                               \
	{ "fcvt." #s ".w", fcvt_##s##_w, 1, 2, 1 },                                 \
	{ "fcvt." #s ".wu", fcvt_##s##_wu, 1, 2, 1 },                               \
	{ "fcvt." #s ".l", fcvt_##s##_l, 1, 2, 1 },                                 \
	{ "fcvt." #s ".lu", fcvt_##s##_lu, 1, 2, 1 }

static const struct op ops[] = {
	OPS(s, 1),
	OPS(d, 0),
	{ "fcvt.s.d", fcvt_s_d, 1, 0, 1 },
	{ "fcvt.d.s", fcvt_d_s, 1, 1, 1 },
};

/* Generated operands per rounding mode and operation. */
#define RANDOM 2000

int main(void)
{
	for (unsigned i = 0; i < N(ops); i++) {
		const struct op *op = &ops[i];
		const u64 *t = op->single == 1 ? svals : op->single == 0 ? dvals : ivals;
		unsigned n = op->single == 1 ? N(svals) : op->single == 0 ? N(dvals) : N(ivals);
		/* The full table cubed is too much for the fused ops: every 6th value. */
		unsigned step = op->arity == 3 ? 6 : 1;
		for (u64 rm = 0; rm < (op->rounds ? 5 : 1); rm++) {
			for (unsigned x = 0; x < n; x++)
				for (unsigned y = 0; y < (op->arity >= 2 ? n : 1); y += step)
					for (unsigned z = 0; z < (op->arity == 3 ? n : 1); z += step)
						emit(op->name, op->fn, rm, t[x], t[y], t[z]);
			for (unsigned k = 0; k < RANDOM; k++) {
				u64 a, b, c;
				if (op->single == 2) {
					a = rnd() >> (rnd() % 64);
					b = c = 0;
				} else {
					a = operand(op->single);
					b = operand(op->single);
					c = operand(op->single);
				}
				if (op->arity == 3 && k % 2) {
					/* An addend cancelling most of the product. */
					u64 p = (op->single ? fmul_s : fmul_d)(a, b, 0);
					u64 sign = op->single ? 0x80000000ull : 0x8000000000000000ull;
					c = p ^ sign ^ (rnd() % 4);
				}
				emit(op->name, op->fn, rm, a, b, c);
			}
		}
	}
	return 0;
}
