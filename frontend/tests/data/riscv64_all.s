# Every instruction tern decodes, assembled by tests/riscv64_decode.rs with
# riscv64-linux-gnu-as -march=rv64gc_zba_zbb_zbs. The 32-bit part is checked against
# objdump -M no-aliases; each compressed line carries, after '#', the base instruction it
# expands to, which the test assembles separately and compares field by field.
	.text
	.option norvc
start:
	lui a0,0x12345
	lui zero,0xfffff
	lui t6,0
	auipc ra,0x80000
	auipc s11,1
	jal ra,start
	jal zero,far
	jal t0,.+0xffffe
	jal a0,.-0x100000
	jalr zero,0(ra)
	jalr ra,-2048(a0)
	jalr t1,2047(t2)
	beq a0,a1,start
	beq zero,t6,.+4094
	beq s1,s2,.-4096
	bne a0,a1,start
	bne zero,t6,.+4094
	bne s1,s2,.-4096
	blt a0,a1,start
	blt zero,t6,.+4094
	blt s1,s2,.-4096
	bge a0,a1,start
	bge zero,t6,.+4094
	bge s1,s2,.-4096
	bltu a0,a1,start
	bltu zero,t6,.+4094
	bltu s1,s2,.-4096
	bgeu a0,a1,start
	bgeu zero,t6,.+4094
	bgeu s1,s2,.-4096
	lb a0,0(sp)
	lb t6,-2048(s0)
	lb zero,2047(zero)
	lh a0,0(sp)
	lh t6,-2048(s0)
	lh zero,2047(zero)
	lw a0,0(sp)
	lw t6,-2048(s0)
	lw zero,2047(zero)
	ld a0,0(sp)
	ld t6,-2048(s0)
	ld zero,2047(zero)
	lbu a0,0(sp)
	lbu t6,-2048(s0)
	lbu zero,2047(zero)
	lhu a0,0(sp)
	lhu t6,-2048(s0)
	lhu zero,2047(zero)
	lwu a0,0(sp)
	lwu t6,-2048(s0)
	lwu zero,2047(zero)
	sb a0,0(sp)
	sb t6,-2048(s0)
	sb zero,2047(a7)
	sh a0,0(sp)
	sh t6,-2048(s0)
	sh zero,2047(a7)
	sw a0,0(sp)
	sw t6,-2048(s0)
	sw zero,2047(a7)
	sd a0,0(sp)
	sd t6,-2048(s0)
	sd zero,2047(a7)
	addi a0,a1,0
	addi t6,zero,-2048
	addi zero,s11,2047
	addi s3,s4,-1
	slti a0,a1,0
	slti t6,zero,-2048
	slti zero,s11,2047
	slti s3,s4,-1
	sltiu a0,a1,0
	sltiu t6,zero,-2048
	sltiu zero,s11,2047
	sltiu s3,s4,-1
	xori a0,a1,0
	xori t6,zero,-2048
	xori zero,s11,2047
	xori s3,s4,-1
	ori a0,a1,0
	ori t6,zero,-2048
	ori zero,s11,2047
	ori s3,s4,-1
	andi a0,a1,0
	andi t6,zero,-2048
	andi zero,s11,2047
	andi s3,s4,-1
	addiw a0,a1,0
	addiw t6,zero,-2048
	addiw zero,s11,2047
	addiw s3,s4,-1
	slli a0,a1,0
	slli t6,t5,63
	slli s1,s2,32
	srli a0,a1,0
	srli t6,t5,63
	srli s1,s2,32
	srai a0,a1,0
	srai t6,t5,63
	srai s1,s2,32
	slliw a0,a1,0
	slliw t6,t5,31
	srliw a0,a1,0
	srliw t6,t5,31
	sraiw a0,a1,0
	sraiw t6,t5,31
	add a0,a1,a2
	add t6,zero,s11
	sub a0,a1,a2
	sub t6,zero,s11
	sll a0,a1,a2
	sll t6,zero,s11
	slt a0,a1,a2
	slt t6,zero,s11
	sltu a0,a1,a2
	sltu t6,zero,s11
	xor a0,a1,a2
	xor t6,zero,s11
	srl a0,a1,a2
	srl t6,zero,s11
	sra a0,a1,a2
	sra t6,zero,s11
	or a0,a1,a2
	or t6,zero,s11
	and a0,a1,a2
	and t6,zero,s11
	addw a0,a1,a2
	addw t6,zero,s11
	subw a0,a1,a2
	subw t6,zero,s11
	sllw a0,a1,a2
	sllw t6,zero,s11
	srlw a0,a1,a2
	srlw t6,zero,s11
	sraw a0,a1,a2
	sraw t6,zero,s11
	mul a0,a1,a2
	mul t6,zero,s11
	mulh a0,a1,a2
	mulh t6,zero,s11
	mulhsu a0,a1,a2
	mulhsu t6,zero,s11
	mulhu a0,a1,a2
	mulhu t6,zero,s11
	div a0,a1,a2
	div t6,zero,s11
	divu a0,a1,a2
	divu t6,zero,s11
	rem a0,a1,a2
	rem t6,zero,s11
	remu a0,a1,a2
	remu t6,zero,s11
	mulw a0,a1,a2
	mulw t6,zero,s11
	divw a0,a1,a2
	divw t6,zero,s11
	divuw a0,a1,a2
	divuw t6,zero,s11
	remw a0,a1,a2
	remw t6,zero,s11
	remuw a0,a1,a2
	remuw t6,zero,s11
	add.uw a0,a1,a2
	add.uw t6,zero,s11
	sh1add a0,a1,a2
	sh1add t6,zero,s11
	sh2add a0,a1,a2
	sh2add t6,zero,s11
	sh3add a0,a1,a2
	sh3add t6,zero,s11
	sh1add.uw a0,a1,a2
	sh1add.uw t6,zero,s11
	sh2add.uw a0,a1,a2
	sh2add.uw t6,zero,s11
	sh3add.uw a0,a1,a2
	sh3add.uw t6,zero,s11
	andn a0,a1,a2
	andn t6,zero,s11
	orn a0,a1,a2
	orn t6,zero,s11
	xnor a0,a1,a2
	xnor t6,zero,s11
	max a0,a1,a2
	max t6,zero,s11
	maxu a0,a1,a2
	maxu t6,zero,s11
	min a0,a1,a2
	min t6,zero,s11
	minu a0,a1,a2
	minu t6,zero,s11
	rol a0,a1,a2
	rol t6,zero,s11
	rolw a0,a1,a2
	rolw t6,zero,s11
	ror a0,a1,a2
	ror t6,zero,s11
	rorw a0,a1,a2
	rorw t6,zero,s11
	bclr a0,a1,a2
	bclr t6,zero,s11
	bext a0,a1,a2
	bext t6,zero,s11
	binv a0,a1,a2
	binv t6,zero,s11
	bset a0,a1,a2
	bset t6,zero,s11
	clz a0,a1
	clz t6,zero
	clzw a0,a1
	clzw t6,zero
	ctz a0,a1
	ctz t6,zero
	ctzw a0,a1
	ctzw t6,zero
	cpop a0,a1
	cpop t6,zero
	cpopw a0,a1
	cpopw t6,zero
	sext.b a0,a1
	sext.b t6,zero
	sext.h a0,a1
	sext.h t6,zero
	zext.h a0,a1
	zext.h t6,zero
	orc.b a0,a1
	orc.b t6,zero
	rev8 a0,a1
	rev8 t6,zero
	rori a0,a1,0
	rori t6,t5,63
	bclri a0,a1,0
	bclri t6,t5,63
	bexti a0,a1,0
	bexti t6,t5,63
	binvi a0,a1,0
	binvi t6,t5,63
	bseti a0,a1,0
	bseti t6,t5,63
	slli.uw a0,a1,0
	slli.uw t6,t5,63
	roriw a0,a1,0
	roriw t6,t5,31
	fence iorw,iorw
	fence r,w
	fence io,rw
	fence w,o
	fence.tso
	fence.i
	ecall
	ebreak
	csrrw a0,mstatus,a1
	csrrw zero,0xfff,t6
	csrrw t6,fflags,zero
	csrrw a0,satp,a0
	csrrs a0,mstatus,a1
	csrrs zero,0xfff,t6
	csrrs t6,fflags,zero
	csrrs a0,satp,a0
	csrrc a0,mstatus,a1
	csrrc zero,0xfff,t6
	csrrc t6,fflags,zero
	csrrc a0,satp,a0
	csrrwi a0,sstatus,0
	csrrwi zero,frm,31
	csrrwi t6,0x7c0,17
	csrrsi a0,sstatus,0
	csrrsi zero,frm,31
	csrrsi t6,0x7c0,17
	csrrci a0,sstatus,0
	csrrci zero,frm,31
	csrrci t6,0x7c0,17
	lr.w a0,(a1)
	sc.w a0,a2,(a1)
	amoswap.w a0,a2,(a1)
	amoadd.w a0,a2,(a1)
	amoxor.w a0,a2,(a1)
	amoand.w a0,a2,(a1)
	amoor.w a0,a2,(a1)
	amomin.w a0,a2,(a1)
	amomax.w a0,a2,(a1)
	amominu.w a0,a2,(a1)
	amomaxu.w a0,a2,(a1)
	lr.w.aq a0,(a1)
	sc.w.aq a0,a2,(a1)
	amoswap.w.aq a0,a2,(a1)
	amoadd.w.aq a0,a2,(a1)
	amoxor.w.aq a0,a2,(a1)
	amoand.w.aq a0,a2,(a1)
	amoor.w.aq a0,a2,(a1)
	amomin.w.aq a0,a2,(a1)
	amomax.w.aq a0,a2,(a1)
	amominu.w.aq a0,a2,(a1)
	amomaxu.w.aq a0,a2,(a1)
	lr.w.rl a0,(a1)
	sc.w.rl a0,a2,(a1)
	amoswap.w.rl a0,a2,(a1)
	amoadd.w.rl a0,a2,(a1)
	amoxor.w.rl a0,a2,(a1)
	amoand.w.rl a0,a2,(a1)
	amoor.w.rl a0,a2,(a1)
	amomin.w.rl a0,a2,(a1)
	amomax.w.rl a0,a2,(a1)
	amominu.w.rl a0,a2,(a1)
	amomaxu.w.rl a0,a2,(a1)
	lr.w.aqrl a0,(a1)
	sc.w.aqrl a0,a2,(a1)
	amoswap.w.aqrl a0,a2,(a1)
	amoadd.w.aqrl a0,a2,(a1)
	amoxor.w.aqrl a0,a2,(a1)
	amoand.w.aqrl a0,a2,(a1)
	amoor.w.aqrl a0,a2,(a1)
	amomin.w.aqrl a0,a2,(a1)
	amomax.w.aqrl a0,a2,(a1)
	amominu.w.aqrl a0,a2,(a1)
	amomaxu.w.aqrl a0,a2,(a1)
	lr.w t6,(zero)
	amoadd.w zero,t6,(s11)
	lr.d a0,(a1)
	sc.d a0,a2,(a1)
	amoswap.d a0,a2,(a1)
	amoadd.d a0,a2,(a1)
	amoxor.d a0,a2,(a1)
	amoand.d a0,a2,(a1)
	amoor.d a0,a2,(a1)
	amomin.d a0,a2,(a1)
	amomax.d a0,a2,(a1)
	amominu.d a0,a2,(a1)
	amomaxu.d a0,a2,(a1)
	lr.d.aq a0,(a1)
	sc.d.aq a0,a2,(a1)
	amoswap.d.aq a0,a2,(a1)
	amoadd.d.aq a0,a2,(a1)
	amoxor.d.aq a0,a2,(a1)
	amoand.d.aq a0,a2,(a1)
	amoor.d.aq a0,a2,(a1)
	amomin.d.aq a0,a2,(a1)
	amomax.d.aq a0,a2,(a1)
	amominu.d.aq a0,a2,(a1)
	amomaxu.d.aq a0,a2,(a1)
	lr.d.rl a0,(a1)
	sc.d.rl a0,a2,(a1)
	amoswap.d.rl a0,a2,(a1)
	amoadd.d.rl a0,a2,(a1)
	amoxor.d.rl a0,a2,(a1)
	amoand.d.rl a0,a2,(a1)
	amoor.d.rl a0,a2,(a1)
	amomin.d.rl a0,a2,(a1)
	amomax.d.rl a0,a2,(a1)
	amominu.d.rl a0,a2,(a1)
	amomaxu.d.rl a0,a2,(a1)
	lr.d.aqrl a0,(a1)
	sc.d.aqrl a0,a2,(a1)
	amoswap.d.aqrl a0,a2,(a1)
	amoadd.d.aqrl a0,a2,(a1)
	amoxor.d.aqrl a0,a2,(a1)
	amoand.d.aqrl a0,a2,(a1)
	amoor.d.aqrl a0,a2,(a1)
	amomin.d.aqrl a0,a2,(a1)
	amomax.d.aqrl a0,a2,(a1)
	amominu.d.aqrl a0,a2,(a1)
	amomaxu.d.aqrl a0,a2,(a1)
	lr.d t6,(zero)
	amoadd.d zero,t6,(s11)
	flw fa0,0(sp)
	flw ft11,-2048(t6)
	flw ft0,2047(zero)
	fsw fa0,0(sp)
	fsw ft11,-2048(t6)
	fsw ft0,2047(zero)
	fmadd.s fa0,fa1,fa2,fa3
	fmadd.s ft11,ft0,fs11,ft8,rtz
	fmadd.s ft0,ft1,ft2,ft3,rne
	fmsub.s fa0,fa1,fa2,fa3
	fmsub.s ft11,ft0,fs11,ft8,rtz
	fmsub.s ft0,ft1,ft2,ft3,rne
	fnmsub.s fa0,fa1,fa2,fa3
	fnmsub.s ft11,ft0,fs11,ft8,rtz
	fnmsub.s ft0,ft1,ft2,ft3,rne
	fnmadd.s fa0,fa1,fa2,fa3
	fnmadd.s ft11,ft0,fs11,ft8,rtz
	fnmadd.s ft0,ft1,ft2,ft3,rne
	fadd.s fa0,fa1,fa2
	fadd.s ft11,ft0,fs11,rne
	fadd.s ft11,ft0,fs11,rtz
	fadd.s ft11,ft0,fs11,rdn
	fadd.s ft11,ft0,fs11,rup
	fadd.s ft11,ft0,fs11,rmm
	fsub.s fa0,fa1,fa2
	fsub.s ft11,ft0,fs11,rne
	fsub.s ft11,ft0,fs11,rtz
	fsub.s ft11,ft0,fs11,rdn
	fsub.s ft11,ft0,fs11,rup
	fsub.s ft11,ft0,fs11,rmm
	fmul.s fa0,fa1,fa2
	fmul.s ft11,ft0,fs11,rne
	fmul.s ft11,ft0,fs11,rtz
	fmul.s ft11,ft0,fs11,rdn
	fmul.s ft11,ft0,fs11,rup
	fmul.s ft11,ft0,fs11,rmm
	fdiv.s fa0,fa1,fa2
	fdiv.s ft11,ft0,fs11,rne
	fdiv.s ft11,ft0,fs11,rtz
	fdiv.s ft11,ft0,fs11,rdn
	fdiv.s ft11,ft0,fs11,rup
	fdiv.s ft11,ft0,fs11,rmm
	fsqrt.s fa0,fa1
	fsqrt.s ft11,ft0,rup
	fsgnj.s fa0,fa1,fa2
	fsgnj.s ft11,ft0,fs11
	fsgnjn.s fa0,fa1,fa2
	fsgnjn.s ft11,ft0,fs11
	fsgnjx.s fa0,fa1,fa2
	fsgnjx.s ft11,ft0,fs11
	fmin.s fa0,fa1,fa2
	fmin.s ft11,ft0,fs11
	fmax.s fa0,fa1,fa2
	fmax.s ft11,ft0,fs11
	fcvt.w.s a0,fa0
	fcvt.w.s t6,ft11,rtz
	fcvt.s.w fa0,a0
	fcvt.s.w ft11,t6,rdn
	fcvt.wu.s a0,fa0
	fcvt.wu.s t6,ft11,rtz
	fcvt.s.wu fa0,a0
	fcvt.s.wu ft11,t6,rdn
	fcvt.l.s a0,fa0
	fcvt.l.s t6,ft11,rtz
	fcvt.s.l fa0,a0
	fcvt.s.l ft11,t6,rdn
	fcvt.lu.s a0,fa0
	fcvt.lu.s t6,ft11,rtz
	fcvt.s.lu fa0,a0
	fcvt.s.lu ft11,t6,rdn
	fmv.x.w a0,fa0
	fmv.x.w t6,ft11
	fmv.w.x fa0,a0
	fmv.w.x ft11,t6
	feq.s a0,fa0,fa1
	feq.s t6,ft11,ft0
	flt.s a0,fa0,fa1
	flt.s t6,ft11,ft0
	fle.s a0,fa0,fa1
	fle.s t6,ft11,ft0
	fclass.s a0,fa0
	fclass.s t6,ft11
	fld fa0,0(sp)
	fld ft11,-2048(t6)
	fld ft0,2047(zero)
	fsd fa0,0(sp)
	fsd ft11,-2048(t6)
	fsd ft0,2047(zero)
	fmadd.d fa0,fa1,fa2,fa3
	fmadd.d ft11,ft0,fs11,ft8,rtz
	fmadd.d ft0,ft1,ft2,ft3,rne
	fmsub.d fa0,fa1,fa2,fa3
	fmsub.d ft11,ft0,fs11,ft8,rtz
	fmsub.d ft0,ft1,ft2,ft3,rne
	fnmsub.d fa0,fa1,fa2,fa3
	fnmsub.d ft11,ft0,fs11,ft8,rtz
	fnmsub.d ft0,ft1,ft2,ft3,rne
	fnmadd.d fa0,fa1,fa2,fa3
	fnmadd.d ft11,ft0,fs11,ft8,rtz
	fnmadd.d ft0,ft1,ft2,ft3,rne
	fadd.d fa0,fa1,fa2
	fadd.d ft11,ft0,fs11,rne
	fadd.d ft11,ft0,fs11,rtz
	fadd.d ft11,ft0,fs11,rdn
	fadd.d ft11,ft0,fs11,rup
	fadd.d ft11,ft0,fs11,rmm
	fsub.d fa0,fa1,fa2
	fsub.d ft11,ft0,fs11,rne
	fsub.d ft11,ft0,fs11,rtz
	fsub.d ft11,ft0,fs11,rdn
	fsub.d ft11,ft0,fs11,rup
	fsub.d ft11,ft0,fs11,rmm
	fmul.d fa0,fa1,fa2
	fmul.d ft11,ft0,fs11,rne
	fmul.d ft11,ft0,fs11,rtz
	fmul.d ft11,ft0,fs11,rdn
	fmul.d ft11,ft0,fs11,rup
	fmul.d ft11,ft0,fs11,rmm
	fdiv.d fa0,fa1,fa2
	fdiv.d ft11,ft0,fs11,rne
	fdiv.d ft11,ft0,fs11,rtz
	fdiv.d ft11,ft0,fs11,rdn
	fdiv.d ft11,ft0,fs11,rup
	fdiv.d ft11,ft0,fs11,rmm
	fsqrt.d fa0,fa1
	fsqrt.d ft11,ft0,rup
	fsgnj.d fa0,fa1,fa2
	fsgnj.d ft11,ft0,fs11
	fsgnjn.d fa0,fa1,fa2
	fsgnjn.d ft11,ft0,fs11
	fsgnjx.d fa0,fa1,fa2
	fsgnjx.d ft11,ft0,fs11
	fmin.d fa0,fa1,fa2
	fmin.d ft11,ft0,fs11
	fmax.d fa0,fa1,fa2
	fmax.d ft11,ft0,fs11
	fcvt.w.d a0,fa0
	fcvt.w.d t6,ft11,rtz
	fcvt.d.w fa0,a0
	fcvt.d.w ft11,t6
	fcvt.wu.d a0,fa0
	fcvt.wu.d t6,ft11,rtz
	fcvt.d.wu fa0,a0
	fcvt.d.wu ft11,t6
	fcvt.l.d a0,fa0
	fcvt.l.d t6,ft11,rtz
	fcvt.d.l fa0,a0
	fcvt.d.l ft11,t6,rdn
	fcvt.lu.d a0,fa0
	fcvt.lu.d t6,ft11,rtz
	fcvt.d.lu fa0,a0
	fcvt.d.lu ft11,t6,rdn
	fmv.x.d a0,fa0
	fmv.x.d t6,ft11
	fmv.d.x fa0,a0
	fmv.d.x ft11,t6
	feq.d a0,fa0,fa1
	feq.d t6,ft11,ft0
	flt.d a0,fa0,fa1
	flt.d t6,ft11,ft0
	fle.d a0,fa0,fa1
	fle.d t6,ft11,ft0
	fclass.d a0,fa0
	fclass.d t6,ft11
	fcvt.s.d fa0,fa1
	fcvt.s.d ft11,ft0,rtz
	fcvt.d.s fa0,fa1
	sret
	mret
	wfi
	sfence.vma zero,zero
	sfence.vma a0,a1
	sfence.vma t6,zero
far:
	.option rvc
	c.addi4spn s0,sp,4          # addi s0,sp,4
	c.addi4spn a5,sp,1020       # addi a5,sp,1020
	c.fld fa0,0(a1)             # fld fa0,0(a1)
	c.fld fs1,248(a5)           # fld fs1,248(a5)
	c.lw a0,0(a1)               # lw a0,0(a1)
	c.lw s1,124(a5)             # lw s1,124(a5)
	c.lw a2,4(s0)               # lw a2,4(s0)
	c.ld a0,0(a1)               # ld a0,0(a1)
	c.ld s1,248(a5)             # ld s1,248(a5)
	c.fsd fa0,0(a1)             # fsd fa0,0(a1)
	c.fsd fs1,248(a5)           # fsd fs1,248(a5)
	c.sw a0,0(a1)               # sw a0,0(a1)
	c.sw s1,124(a5)             # sw s1,124(a5)
	c.sw a2,64(s0)              # sw a2,64(s0)
	c.sd a0,0(a1)               # sd a0,0(a1)
	c.sd s1,248(a5)             # sd s1,248(a5)
	c.nop                       # addi zero,zero,0
	c.addi a0,1                 # addi a0,a0,1
	c.addi t6,-32               # addi t6,t6,-32
	c.addi sp,31                # addi sp,sp,31
	c.addiw a0,1                # addiw a0,a0,1
	c.addiw t6,-32              # addiw t6,t6,-32
	c.addiw a0,0                # addiw a0,a0,0
	c.li a0,0                   # addi a0,zero,0
	c.li t6,-32                 # addi t6,zero,-32
	c.li ra,31                  # addi ra,zero,31
	c.addi16sp sp,16            # addi sp,sp,16
	c.addi16sp sp,-512          # addi sp,sp,-512
	c.addi16sp sp,496           # addi sp,sp,496
	c.lui a0,1                  # lui a0,1
	c.lui t6,0x1f               # lui t6,0x1f
	c.lui ra,0xfffe0            # lui ra,0xfffe0
	c.lui s0,0xfffff            # lui s0,0xfffff
	c.srli a0,1                 # srli a0,a0,1
	c.srli s1,63                # srli s1,s1,63
	c.srli a5,32                # srli a5,a5,32
	c.srai a0,1                 # srai a0,a0,1
	c.srai s1,63                # srai s1,s1,63
	c.andi a0,0                 # andi a0,a0,0
	c.andi s1,-32               # andi s1,s1,-32
	c.andi a5,31                # andi a5,a5,31
	c.sub a0,a1                 # sub a0,a0,a1
	c.sub s0,a5                 # sub s0,s0,a5
	c.xor a0,a1                 # xor a0,a0,a1
	c.or s1,a2                  # or s1,s1,a2
	c.and a5,s0                 # and a5,a5,s0
	c.subw a0,a1                # subw a0,a0,a1
	c.addw a5,s0                # addw a5,a5,s0
	c.j .+2                     # jal zero,.+2
	c.j .-2048                  # jal zero,.-2048
	c.j .+2046                  # jal zero,.+2046
	c.j .+0x2aa                 # jal zero,.+0x2aa
	c.beqz a0,.+2               # beq a0,zero,.+2
	c.beqz s0,.-256             # beq s0,zero,.-256
	c.beqz a5,.+254             # beq a5,zero,.+254
	c.bnez a0,.+0xaa            # bne a0,zero,.+0xaa
	c.bnez s1,.-0x56            # bne s1,zero,.-0x56
	c.slli a0,1                 # slli a0,a0,1
	c.slli t6,63                # slli t6,t6,63
	c.slli ra,32                # slli ra,ra,32
	c.fldsp fa0,0(sp)           # fld fa0,0(sp)
	c.fldsp ft0,504(sp)         # fld ft0,504(sp)
	c.fldsp ft11,8(sp)          # fld ft11,8(sp)
	c.lwsp a0,0(sp)             # lw a0,0(sp)
	c.lwsp t6,252(sp)           # lw t6,252(sp)
	c.lwsp ra,4(sp)             # lw ra,4(sp)
	c.ldsp a0,0(sp)             # ld a0,0(sp)
	c.ldsp t6,504(sp)           # ld t6,504(sp)
	c.ldsp ra,8(sp)             # ld ra,8(sp)
	c.jr ra                     # jalr zero,0(ra)
	c.jr t6                     # jalr zero,0(t6)
	c.mv a0,a1                  # add a0,zero,a1
	c.mv t6,ra                  # add t6,zero,ra
	c.ebreak                    # ebreak
	c.jalr a0                   # jalr ra,0(a0)
	c.jalr t6                   # jalr ra,0(t6)
	c.add a0,a1                 # add a0,a0,a1
	c.add t6,ra                 # add t6,t6,ra
	c.fsdsp fa0,0(sp)           # fsd fa0,0(sp)
	c.fsdsp ft11,504(sp)        # fsd ft11,504(sp)
	c.swsp a0,0(sp)             # sw a0,0(sp)
	c.swsp t6,252(sp)           # sw t6,252(sp)
	c.swsp zero,4(sp)           # sw zero,4(sp)
	c.sdsp a0,0(sp)             # sd a0,0(sp)
	c.sdsp t6,504(sp)           # sd t6,504(sp)
	c.sdsp ra,8(sp)             # sd ra,8(sp)
# HINTs, which must decode as ordinary instructions
	.2byte 0x0005            # addi zero,zero,1
	.2byte 0x4001            # addi zero,zero,0
	.2byte 0x6005            # lui zero,1
	.2byte 0x0006            # slli zero,zero,1
	.2byte 0x802e            # add zero,zero,a1
	.2byte 0x902e            # add zero,zero,a1
	.2byte 0x0502            # slli a0,a0,0
	.2byte 0x8101            # srli a0,a0,0
	.2byte 0x0501            # addi a0,a0,0
