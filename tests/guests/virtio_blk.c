/*
 * virtio_blk: a minimal virtio-blk driver over virtio-mmio (virtio 1.x spec, 3.1, 2.7, 5.2),
 * polling the used ring. It reads sector 0 (the host test wrote a signature there), writes a
 * pattern to sector 1, flushes and reads it back; then it submits malformed chains and checks
 * the device rejects each (non-OK status or used length 0) and still serves a good request
 * afterwards.
 *
 * With `ro` on the command line (tern's --drive FILE,readonly) the write must fail with IOERR
 * and sector 1 must read back unchanged.
 */
#include "virtio_mmio.h"

#define BLK_OK 0x30    /* tern exits with 97 */
#define BLK_RO_OK 0x31 /* tern exits with 99 */

/* Feature bits. */
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_F_VERSION_1 32

/* Request types and statuses (5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define STATUS_UNTOUCHED 0xff

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

#define QSIZE 16
#define SECTOR 512
/* Far beyond any RAM a test gives the guest (64 GiB). */
#define BEYOND_RAM 0x1000000000UL

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[QSIZE];
    uint16_t used_event;
};
struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};
struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[QSIZE];
    uint16_t avail_event;
};
struct blk_req_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

static volatile struct virtq_desc desc[QSIZE] __attribute__((aligned(4096)));
static volatile struct virtq_avail avail __attribute__((aligned(4096)));
static volatile struct virtq_used used __attribute__((aligned(4096)));
static struct blk_req_hdr hdr __attribute__((aligned(16)));
static uint8_t buf[SECTOR] __attribute__((aligned(SECTOR)));
static uint8_t sector0[16];
static volatile uint8_t req_status;

static uint64_t dev;
static uint16_t qsize, avail_idx, used_idx;

struct completion {
    int done;
    uint32_t id, len;
};

static uint32_t rd(uint32_t reg) { return mmio_read32(dev + reg); }
static void wr(uint32_t reg, uint32_t v) { mmio_write32(dev + reg, v); }

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    desc[i].addr = addr;
    desc[i].len = len;
    desc[i].flags = flags;
    desc[i].next = next;
}

/* Publishes chain `head`, notifies queue 0 and polls the used ring (bounded). */
static struct completion submit(uint16_t head)
{
    struct completion c = {0, 0, 0};
    avail.ring[avail_idx % qsize] = head;
    barrier(); /* the ring entry before the index (x86 keeps stores in order) */
    avail.idx = ++avail_idx;
    barrier();
    wr(VMMIO_QUEUE_NOTIFY, 0);

    uint64_t deadline = rt_deadline(2000);
    while (used.idx == used_idx) {
        if (rt_expired(deadline))
            return c;
        cpu_relax();
    }
    barrier();
    volatile struct virtq_used_elem *e = &used.ring[used_idx % qsize];
    c.done = 1;
    c.id = e->id;
    c.len = e->len;
    used_idx++;
    /* Polling: acknowledge so the (masked) interrupt line drops. */
    uint32_t isr = rd(VMMIO_INTERRUPT_STATUS);
    if (isr)
        wr(VMMIO_INTERRUPT_ACK, isr);
    return c;
}

/* A well-formed request: header, optional 512-byte data buffer, status. */
static struct completion request(uint32_t type, uint64_t sector, int with_data)
{
    hdr.type = type;
    hdr.reserved = 0;
    hdr.sector = sector;
    req_status = STATUS_UNTOUCHED;
    unsigned n = 0;
    set_desc(n, (uint64_t)&hdr, sizeof hdr, VIRTQ_DESC_F_NEXT, (uint16_t)(n + 1));
    n++;
    if (with_data) {
        uint16_t flags = VIRTQ_DESC_F_NEXT | (type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0);
        set_desc(n, (uint64_t)buf, SECTOR, flags, (uint16_t)(n + 1));
        n++;
    }
    set_desc(n, (uint64_t)&req_status, 1, VIRTQ_DESC_F_WRITE, 0);
    struct completion c = submit(0);
    if (c.done && c.id != 0)
        rt_fail("used ring returned id %u, expected head 0", c.id);
    return c;
}

static void check_device_alive(const char *after)
{
    if (rd(VMMIO_STATUS) & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
        rt_fail("device status 0x%02x after %s", rd(VMMIO_STATUS), after);
}

static void good_read_after(const char *what)
{
    memset(buf, 0, sizeof buf);
    struct completion c = request(VIRTIO_BLK_T_IN, 0, 1);
    if (!c.done)
        rt_fail("good read after %s: no completion", what);
    if (req_status != VIRTIO_BLK_S_OK || memcmp(buf, sector0, sizeof sector0) != 0)
        rt_fail("good read after %s: status 0x%02x, data %s", what, req_status,
                memcmp(buf, sector0, sizeof sector0) ? "differs" : "ok");
    rt_printf("TERN-BLK good read after %s: ok\n", what);
}

static void expect_rejected(const char *what, struct completion c)
{
    if (!c.done)
        rt_fail("bad %s: never completed (the device dropped the chain)", what);
    if (c.id != 0)
        rt_fail("bad %s: used id %u, expected head 0", what, c.id);
    if (req_status == VIRTIO_BLK_S_OK && c.len != 0)
        rt_fail("bad %s: completed with status OK and used length %u", what, c.len);
    rt_printf("TERN-BLK bad %s: rejected (len=%u status=0x%02x)\n", what, c.len, req_status);
    check_device_alive(what);
    good_read_after(what);
}

static void malformed_requests(void)
{
    /* 1. The data buffer lies beyond guest RAM. */
    hdr.type = VIRTIO_BLK_T_IN;
    hdr.sector = 0;
    req_status = STATUS_UNTOUCHED;
    set_desc(0, (uint64_t)&hdr, sizeof hdr, VIRTQ_DESC_F_NEXT, 1);
    set_desc(1, BEYOND_RAM, SECTOR, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
    set_desc(2, (uint64_t)&req_status, 1, VIRTQ_DESC_F_WRITE, 0);
    expect_rejected("beyond-ram", submit(0));

    /* 2. A read whose data buffer is device-readable: the device may not write it. */
    hdr.type = VIRTIO_BLK_T_IN;
    req_status = STATUS_UNTOUCHED;
    memset(buf, 0x5a, sizeof buf);
    set_desc(0, (uint64_t)&hdr, sizeof hdr, VIRTQ_DESC_F_NEXT, 1);
    set_desc(1, (uint64_t)buf, SECTOR, VIRTQ_DESC_F_NEXT, 2);
    set_desc(2, (uint64_t)&req_status, 1, VIRTQ_DESC_F_WRITE, 0);
    struct completion c = submit(0);
    if (buf[0] != 0x5a || buf[SECTOR - 1] != 0x5a)
        rt_fail("bad readable-data: the device wrote into a device-readable buffer");
    expect_rejected("readable-data", c);

    /* 3. A chain whose `next` points back at itself. */
    hdr.type = VIRTIO_BLK_T_IN;
    req_status = STATUS_UNTOUCHED;
    set_desc(0, (uint64_t)&hdr, sizeof hdr, VIRTQ_DESC_F_NEXT, 0);
    set_desc(1, 0, 0, 0, 0);
    set_desc(2, 0, 0, 0, 0);
    expect_rejected("self-loop", submit(0));
}

static uint64_t find_blk(void)
{
    for (unsigned i = 0; i < virtio_slot_count(); i++) {
        uint64_t base = virtio_slot(i);
        if (mmio_read32(base + VMMIO_MAGIC) != VIRTIO_MAGIC)
            break;
        /* DeviceID 0 is an empty slot (tern has none; QEMU's microvm has). */
        if (mmio_read32(base + VMMIO_DEVICE_ID) == VIRTIO_ID_BLOCK) {
            rt_printf("TERN-BLK found in slot %u at 0x%lx\n", i, base);
            return base;
        }
    }
    rt_fail("no virtio-blk device (DeviceID 2) in the virtio-mmio slots");
}

/* Device initialization (3.1.1); returns the negotiated features. */
static uint64_t init_device(int read_only)
{
    wr(VMMIO_STATUS, 0);
    uint64_t deadline = rt_deadline(1000);
    while (rd(VMMIO_STATUS) != 0)
        if (rt_expired(deadline))
            rt_fail("device reset did not complete");
    wr(VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);

    wr(VMMIO_DEVICE_FEATURES_SEL, 0);
    uint64_t offered = rd(VMMIO_DEVICE_FEATURES);
    wr(VMMIO_DEVICE_FEATURES_SEL, 1);
    offered |= (uint64_t)rd(VMMIO_DEVICE_FEATURES) << 32;
    if (!(offered & (1UL << VIRTIO_F_VERSION_1)))
        rt_fail("device does not offer VIRTIO_F_VERSION_1 (features 0x%lx)", offered);
    if (!read_only && !(offered & (1UL << VIRTIO_BLK_F_FLUSH)))
        rt_fail("device does not offer VIRTIO_BLK_F_FLUSH (features 0x%lx)", offered);
    uint64_t wanted = (1UL << VIRTIO_F_VERSION_1) | (1UL << VIRTIO_BLK_F_FLUSH) | (1UL << VIRTIO_BLK_F_RO);
    uint64_t features = offered & wanted;
    wr(VMMIO_DRIVER_FEATURES_SEL, 0);
    wr(VMMIO_DRIVER_FEATURES, (uint32_t)features);
    wr(VMMIO_DRIVER_FEATURES_SEL, 1);
    wr(VMMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
    rt_printf("TERN-BLK features: version1=1 flush=%u ro=%u\n", (unsigned)(features >> VIRTIO_BLK_F_FLUSH) & 1,
              (unsigned)(features >> VIRTIO_BLK_F_RO) & 1);

    wr(VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (!(rd(VMMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK))
        rt_fail("device refused the features 0x%lx", features);

    wr(VMMIO_QUEUE_SEL, 0);
    if (rd(VMMIO_QUEUE_READY) != 0)
        rt_fail("queue 0 ready before setup");
    uint32_t max = rd(VMMIO_QUEUE_NUM_MAX);
    if (max < 4)
        rt_fail("queue 0 QueueNumMax %u", max);
    qsize = max < QSIZE ? (uint16_t)max : QSIZE;
    avail.flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    wr(VMMIO_QUEUE_NUM, qsize);
    wr(VMMIO_QUEUE_DESC_LOW, (uint32_t)(uint64_t)desc);
    wr(VMMIO_QUEUE_DESC_HIGH, (uint32_t)((uint64_t)desc >> 32));
    wr(VMMIO_QUEUE_DRIVER_LOW, (uint32_t)(uint64_t)&avail);
    wr(VMMIO_QUEUE_DRIVER_HIGH, (uint32_t)((uint64_t)&avail >> 32));
    wr(VMMIO_QUEUE_DEVICE_LOW, (uint32_t)(uint64_t)&used);
    wr(VMMIO_QUEUE_DEVICE_HIGH, (uint32_t)((uint64_t)&used >> 32));
    wr(VMMIO_QUEUE_READY, 1);

    wr(VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                         VIRTIO_STATUS_DRIVER_OK);
    check_device_alive("initialization");

    uint32_t gen, lo, hi;
    do {
        gen = rd(VMMIO_CONFIG_GENERATION);
        lo = rd(VMMIO_CONFIG);
        hi = rd(VMMIO_CONFIG + 4);
    } while (gen != rd(VMMIO_CONFIG_GENERATION));
    rt_printf("TERN-BLK capacity=%lu sectors queue-size=%u\n", ((uint64_t)hi << 32) | lo, qsize);
    return features;
}

static void fill_pattern(void)
{
    static const char tag[16] = "TERN-GUEST-WROTE";
    for (unsigned i = 0; i < SECTOR; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    memcpy(buf, tag, sizeof tag);
}

static int pattern_matches(void)
{
    uint8_t expected[SECTOR];
    memcpy(expected, buf, SECTOR);
    fill_pattern();
    int same = memcmp(expected, buf, SECTOR) == 0;
    memcpy(buf, expected, SECTOR);
    return same;
}

void guest_main(void)
{
    int read_only = rt_cmdline_has("ro");
    dev = find_blk();
    init_device(read_only);

    struct completion c = request(VIRTIO_BLK_T_IN, 0, 1);
    if (!c.done || req_status != VIRTIO_BLK_S_OK)
        rt_fail("read sector 0: %s, status 0x%02x", c.done ? "completed" : "no completion", req_status);
    memcpy(sector0, buf, sizeof sector0);
    rt_puts("TERN-BLK sector0: ");
    for (unsigned i = 0; i < 16; i++)
        rt_printf("%02x", buf[i]);
    rt_puts(" |");
    for (unsigned i = 0; i < 16; i++)
        rt_putc(buf[i] >= 0x20 && buf[i] < 0x7f ? (char)buf[i] : '.');
    rt_puts("|\n");

    fill_pattern();
    c = request(VIRTIO_BLK_T_OUT, 1, 1);
    if (!c.done)
        rt_fail("write sector 1: no completion");
    rt_printf("TERN-BLK write sector1: status=%u\n", req_status);
    if (read_only) {
        if (req_status != VIRTIO_BLK_S_IOERR)
            rt_fail("write to a read-only drive: status %u, expected IOERR (1)", req_status);
    } else {
        if (req_status != VIRTIO_BLK_S_OK)
            rt_fail("write sector 1: status %u", req_status);
        c = request(VIRTIO_BLK_T_FLUSH, 0, 0);
        if (!c.done || req_status != VIRTIO_BLK_S_OK)
            rt_fail("flush: %s, status %u", c.done ? "completed" : "no completion", req_status);
        rt_printf("TERN-BLK flush: status=%u\n", req_status);
    }

    memset(buf, 0, sizeof buf);
    c = request(VIRTIO_BLK_T_IN, 1, 1);
    if (!c.done || req_status != VIRTIO_BLK_S_OK)
        rt_fail("read sector 1: %s, status %u", c.done ? "completed" : "no completion", req_status);
    int same = pattern_matches();
    if (read_only) {
        if (same)
            rt_fail("sector 1 holds the pattern although the drive is read-only");
        rt_puts("TERN-BLK readback sector1: unchanged\n");
    } else {
        if (!same)
            rt_fail("sector 1 read back differs from what was written");
        rt_puts("TERN-BLK readback sector1: match\n");
    }

    malformed_requests();

    rt_puts("TERN-BLK ok\n");
    rt_exit(read_only ? BLK_RO_OK : BLK_OK);
}
