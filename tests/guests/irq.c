/*
 * irq: an interrupt from a device model reaches a guest handler through the IOAPIC and the local
 * APIC. COM1's IRQ (ISA pin 4, edge, active high) is routed to vector 0x40 on this CPU.
 *
 *   default mode: THRE interrupt -- enabling IER.ETBEI with an empty transmitter raises it at once.
 *   `rx` on the command line: received-data interrupts; the bytes the host writes on tern's stdin
 *   are collected up to a newline and echoed as "TERN-RX: <text>".
 */
#include "rt.h"

#define IRQ_THRE_OK 0x2c /* tern exits with 89 */
#define IRQ_RX_OK 0x2d   /* tern exits with 91 */

#define COM1_VECTOR 0x40
#define COM1_PIN 4
#define SPURIOUS_VECTOR 0xff

/* 16550 registers (offsets from COM1) and bits. */
#define UART_RBR 0
#define UART_IER 1
#define UART_IIR 2
#define UART_FCR 2
#define UART_MCR 4
#define UART_LSR 5
#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IIR_NO_INT 0x01
#define IIR_ID_MASK 0x0e
#define IIR_THRE 0x02
#define IIR_RDA 0x04
#define IIR_CTI 0x0c /* character timeout (FIFO mode) */
#define FCR_ENABLE_CLEAR 0x07 /* enable FIFOs, clear both, trigger at 1 byte */
#define MCR_DTR_RTS_OUT2 0x0b /* OUT2 gates the UART's interrupt onto the ISA line on PCs */
#define LSR_DR 0x01

/* IOAPIC indirect registers. */
#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN 0x10
#define IOAPIC_REDTBL(pin) (0x10 + 2 * (pin))

/* Local APIC registers. */
#define LAPIC_TPR 0x80
#define LAPIC_SVR 0xf0
#define SVR_ENABLE 0x100

/* The legacy 8259s' data ports: masked so only the IOAPIC delivers. */
#define PIC1_DATA 0x21
#define PIC2_DATA 0xa1

static volatile unsigned thre_seen, rx_interrupts, line_done;
static volatile uint8_t last_iir;
static char line[64];
static volatile unsigned line_len;

static void ioapic_write(uint32_t reg, uint32_t value)
{
    mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
    mmio_write32(IOAPIC_BASE + IOAPIC_WIN, value);
}

static uint32_t ioapic_read(uint32_t reg)
{
    mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
    return mmio_read32(IOAPIC_BASE + IOAPIC_WIN);
}

static void thre_handler(struct rt_frame *frame)
{
    (void)frame;
    uint8_t iir = inb(COM1 + UART_IIR); /* reading IIR acknowledges a THRE interrupt */
    last_iir = iir;
    outb(COM1 + UART_IER, 0);           /* one is enough: no storm while we print */
    thre_seen++;
    rt_lapic_eoi();
}

static void rx_handler(struct rt_frame *frame)
{
    (void)frame;
    rx_interrupts++;
    last_iir = inb(COM1 + UART_IIR);
    for (unsigned n = 0; n < 64 && (inb(COM1 + UART_LSR) & LSR_DR); n++) {
        char c = (char)inb(COM1 + UART_RBR);
        if (c == '\n' || c == '\r') {
            if (line_len)
                line_done = 1;
        } else if (!line_done && line_len + 1 < sizeof line) {
            line[line_len++] = c;
        }
    }
    rt_lapic_eoi();
}

static void route_com1(void)
{
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);

    uint32_t id = rt_lapic_id();
    /* Fixed delivery, physical destination, active high, edge, unmasked. */
    ioapic_write(IOAPIC_REDTBL(COM1_PIN) + 1, id << 24);
    ioapic_write(IOAPIC_REDTBL(COM1_PIN), COM1_VECTOR);
    uint32_t lo = ioapic_read(IOAPIC_REDTBL(COM1_PIN));
    uint32_t ver = ioapic_read(0x01);
    rt_printf("TERN-IRQ ioapic version=0x%02x entries=%u pin4=0x%08x apic-id=%u\n", ver & 0xff,
              ((ver >> 16) & 0xff) + 1, lo, id);
    if ((lo & 0x1ffff) != COM1_VECTOR)
        rt_fail("IOAPIC redirection entry for pin 4 reads back 0x%08x", lo);

    mmio_write32(LAPIC_BASE + LAPIC_TPR, 0);
    mmio_write32(LAPIC_BASE + LAPIC_SVR, SVR_ENABLE | SPURIOUS_VECTOR);
}

static void run_thre(void)
{
    rt_set_handler(COM1_VECTOR, thre_handler);
    route_com1();
    cli();
    outb(COM1 + UART_MCR, MCR_DTR_RTS_OUT2);
    outb(COM1 + UART_IER, IER_ETBEI);
    /* sti's one-instruction shadow makes "sti; hlt" atomic: the interrupt wakes the hlt. */
    for (unsigned tries = 0; !thre_seen && tries < 3; tries++)
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    if (!thre_seen)
        rt_fail("no THRE interrupt after enabling IER.ETBEI");
    rt_printf("TERN-IRQ thre handled: vector=0x%x iir=0x%02x count=%u\n", COM1_VECTOR, last_iir, thre_seen);
    if ((last_iir & IIR_ID_MASK) != IIR_THRE)
        rt_fail("IIR 0x%02x in the handler, expected THRE (0x02)", last_iir);
    rt_exit(IRQ_THRE_OK);
}

static void run_rx(void)
{
    rt_set_handler(COM1_VECTOR, rx_handler);
    route_com1();
    cli();
    outb(COM1 + UART_FCR, FCR_ENABLE_CLEAR);
    outb(COM1 + UART_MCR, MCR_DTR_RTS_OUT2);
    outb(COM1 + UART_IER, IER_ERBFI);
    rt_puts("TERN-RX ready\n");
    /* No bound here: the host decides when to type; its harness has the wall-clock limit. */
    while (!line_done)
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    outb(COM1 + UART_IER, 0);
    line[line_len] = 0;
    rt_printf("TERN-RX: %s\n", line);
    uint8_t id = last_iir & IIR_ID_MASK;
    if (id != IIR_RDA && id != IIR_CTI)
        rt_fail("IIR 0x%02x in the handler, expected received data (0x04 or 0x0c)", last_iir);
    rt_exit(IRQ_RX_OK);
}

void guest_main(void)
{
    if (rt_cmdline_has("rx"))
        run_rx();
    run_thre();
}
