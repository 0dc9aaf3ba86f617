/*
 * geom_kpi.h: what the C twins (cnop.c, cstripe.c) need from FreeBSD's kernel headers,
 * declared by hand for FreeBSD 15 on amd64 (LP64), with the two places where 14 and
 * 16-CURRENT differ (g_class's config slot; bio_error moved into bio_exterr) chosen by
 * GEOM_FREEBSD_RELEASE, which build.rs sets from geom-core's release.
 *
 * The twins are compiled on the host, where <sys/queue.h>, <sys/types.h> and friends are
 * Linux's, so nothing here comes from the system headers except <stddef.h> and
 * <stdint.h>.  The structures follow the kernel's layouts (sys/sys/bio.h, sys/geom/geom.h,
 * sys/sys/malloc.h as of the 15 branch, without options DIAGNOSTIC), which are also the
 * layouts geom-core's `sys` module pins with its own assertions; twin_layout() in
 * layout.c reports every size and offset so bench/tests/ctwins.rs can hold the two side
 * by side.
 *
 * The KPI functions are the ones geom-host exports under their FreeBSD names.  Services
 * whose names would collide with the C library (malloc, free, arc4random) go through the
 * platform seam (geom_rs_*), as geom-core's classes do; the usual kernel spellings are
 * provided on top of it.
 */
#ifndef GEOM_KPI_H
#define GEOM_KPI_H

#include <stddef.h>
#include <stdint.h>

#ifndef GEOM_FREEBSD_RELEASE
#define GEOM_FREEBSD_RELEASE 15
#endif

/* -- sys/_types.h, amd64 -------------------------------------------------------------- */

typedef int64_t off_t;
typedef int64_t daddr_t;
typedef char *caddr_t;
typedef unsigned int u_int;
typedef unsigned long u_long;

#define __printflike(f, a) __attribute__((__format__(__printf__, f, a)))
#define __predict_true(e) __builtin_expect(!!(e), 1)
#define __predict_false(e) __builtin_expect(!!(e), 0)

/* -- sys/libkern.h and sys/systm.h: the string helpers the kernel has too ------------- */

int snprintf(char *buf, size_t size, const char *fmt, ...) __printflike(3, 4);
int strcmp(const char *a, const char *b);
size_t strlen(const char *s);
void *memcpy(void *dst, const void *src, size_t len);

/* The largest request GEOM sends down (kern.maxphys). */
extern u_long maxphys;

/* -- sys/errno.h (FreeBSD's numbers, not the host's) ---------------------------------- */

#define EIO 5
#define ENXIO 6
#define ENOMEM 12
#define EBUSY 16
#define EEXIST 17
#define EINVAL 22
#define EOPNOTSUPP 45

/* -- sys/queue.h: the two kinds of linkage GEOM's structures embed -------------------- */

#define LIST_HEAD(name, type)                                                            \
	struct name {                                                                    \
		struct type *lh_first;                                                   \
	}
#define LIST_ENTRY(type)                                                                 \
	struct {                                                                         \
		struct type *le_next;                                                    \
		struct type **le_prev;                                                   \
	}
#define LIST_FIRST(head) ((head)->lh_first)
#define LIST_NEXT(elm, field) ((elm)->field.le_next)
#define LIST_FOREACH(var, head, field)                                                   \
	for ((var) = LIST_FIRST(head); (var) != NULL; (var) = LIST_NEXT(var, field))

#define TAILQ_HEAD(name, type)                                                           \
	struct name {                                                                    \
		struct type *tqh_first;                                                  \
		struct type **tqh_last;                                                  \
	}
#define TAILQ_ENTRY(type)                                                                \
	struct {                                                                         \
		struct type *tqe_next;                                                   \
		struct type **tqe_prev;                                                  \
	}
#define TAILQ_FIRST(head) ((head)->tqh_first)
#define TAILQ_NEXT(elm, field) ((elm)->field.tqe_next)
#define TAILQ_INIT(head)                                                                 \
	do {                                                                             \
		(head)->tqh_first = NULL;                                                \
		(head)->tqh_last = &(head)->tqh_first;                                   \
	} while (0)
#define TAILQ_INSERT_TAIL(head, elm, field)                                              \
	do {                                                                             \
		(elm)->field.tqe_next = NULL;                                            \
		(elm)->field.tqe_prev = (head)->tqh_last;                                \
		*(head)->tqh_last = (elm);                                               \
		(head)->tqh_last = &(elm)->field.tqe_next;                               \
	} while (0)
/* Only ever used here to pop the head of a queue. */
#define TAILQ_REMOVE_HEAD(head, field)                                                   \
	do {                                                                             \
		if (((head)->tqh_first = (head)->tqh_first->field.tqe_next) == NULL)     \
			(head)->tqh_last = &(head)->tqh_first;                           \
		else                                                                     \
			(head)->tqh_first->field.tqe_prev = &(head)->tqh_first;          \
	} while (0)

/* -- machine/atomic.h: the few operations used, over the compiler's builtins ----------- */

static inline void
atomic_add_64(volatile uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static inline uint64_t
atomic_load_64(volatile uint64_t *p)
{
	return (__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline int
atomic_cmpset_64(volatile uint64_t *p, uint64_t expect, uint64_t src)
{
	return (__atomic_compare_exchange_n(p, &expect, src, 0, __ATOMIC_RELAXED,
	    __ATOMIC_RELAXED));
}

static inline u_int
atomic_load_int(volatile u_int *p)
{
	return (__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline void
atomic_store_int(volatile u_int *p, u_int v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline int
atomic_cmpset_acq_int(volatile int *p, int expect, int src)
{
	return (__atomic_compare_exchange_n(p, &expect, src, 0, __ATOMIC_ACQ_REL,
	    __ATOMIC_ACQUIRE));
}

static inline int
atomic_load_acq_int(volatile int *p)
{
	return (__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static inline void
atomic_add_acq_64(volatile int64_t *p, int64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
}

/* Adds v and returns the value before, as atomic_fetchadd_int(9) does. */
static inline u_int
atomic_fetchadd_acq_int(volatile u_int *p, u_int v)
{
	return (__atomic_fetch_add(p, v, __ATOMIC_ACQ_REL));
}

/* -- sys/malloc.h -------------------------------------------------------------------- */

#define M_NOWAIT 0x0001
#define M_WAITOK 0x0002
#define M_ZERO 0x0100

struct malloc_type_internals {
	uint32_t mti_probes[2];
	unsigned char mti_zone;
	void *mti_stats;
	u_long mti_spare[8];
};

struct malloc_type {
	struct malloc_type *ks_next;
	u_long ks_version;
	const char *ks_shortdesc;
	struct malloc_type_internals ks_mti;
};

extern struct malloc_type M_GEOM[1];

/*
 * The platform seam: malloc(9)/free(9) and arc4random(9) under names that cannot clash
 * with the C library the host links.
 */
void *geom_rs_malloc(size_t size, struct malloc_type *mtp, int flags);
void geom_rs_free(void *addr, struct malloc_type *mtp);
uint32_t geom_rs_random(void);

#define arc4random() geom_rs_random()

/* -- sys/bio.h ----------------------------------------------------------------------- */

#define BIO_READ 0x01
#define BIO_WRITE 0x02
#define BIO_DELETE 0x03
#define BIO_GETATTR 0x04
#define BIO_FLUSH 0x05
#define BIO_SPEEDUP 0x0a

#define BIO_UNMAPPED 0x0010

#define PAGE_SHIFT 12
#define PAGE_SIZE (1 << PAGE_SHIFT)
#define PAGE_MASK (PAGE_SIZE - 1)

struct bio;
struct cdev;
struct disk;
struct vm_page;
struct devstat;
struct thread;
struct sbuf;
struct gctl_req;
struct g_consumer;
struct g_provider;

typedef void bio_task_t(void *);

struct bintime {
	int64_t sec;
	uint64_t frac;
};

/* sys/sys/disk_zone.h: a command byte and a union of per-command arguments. */
struct disk_zone_args {
	uint8_t zone_cmd;
	union {
		uint64_t zone_space[15];
	} zone_params;
};

/* sys/sys/_exterr.h (16-CURRENT): an errno with a message and where it came from. */
struct kexterr {
	int error;
	const char *msg;
	uint64_t p1;
	uint64_t p2;
	u_int cat;
	u_int src_line;
};

struct bio {
	uint16_t bio_cmd;
	uint16_t bio_flags;
	uint16_t bio_cflags;
	uint16_t bio_pflags;
	struct cdev *bio_dev;
	struct disk *bio_disk;
	off_t bio_offset;
	long bio_bcount;
	caddr_t bio_data;
	struct vm_page **bio_ma;
	int bio_ma_offset;
	int bio_ma_n;
#if GEOM_FREEBSD_RELEASE < 16
	int bio_error;
#endif
	long bio_resid;
	void (*bio_done)(struct bio *);
	void *bio_driver1;
	void *bio_driver2;
	void *bio_caller1;
	void *bio_caller2;
	TAILQ_ENTRY(bio) bio_queue;
	const char *bio_attribute;
	struct disk_zone_args bio_zone;
	struct g_consumer *bio_from;
	struct g_provider *bio_to;
	off_t bio_length;
	off_t bio_completed;
	u_int bio_children;
	u_int bio_inbed;
	struct bio *bio_parent;
	struct bintime bio_t0;
	bio_task_t *bio_task;
	void *bio_task_arg;
	void *bio_spare1;
	void *bio_spare2;
	daddr_t bio_pblkno;
#if GEOM_FREEBSD_RELEASE >= 16
	struct kexterr bio_exterr;
#endif
};

#if GEOM_FREEBSD_RELEASE >= 16
/* 16-CURRENT keeps the errno in the extended error; the old name still reaches it. */
#define bio_error bio_exterr.error
#endif

TAILQ_HEAD(bio_queue, bio);

/* -- sys/geom/geom.h ----------------------------------------------------------------- */

#define G_VERSION 0x20041207

struct g_class;
struct g_geom;

typedef struct g_geom *g_taste_t(struct g_class *, struct g_provider *, int);
typedef void g_ctl_req_t(struct gctl_req *, struct g_class *, const char *);
typedef int g_ctl_destroy_geom_t(struct gctl_req *, struct g_class *, struct g_geom *);
typedef void g_init_t(struct g_class *);
typedef void g_fini_t(struct g_class *);
typedef void g_start_t(struct bio *);
typedef void g_spoiled_t(struct g_consumer *);
typedef void g_attrchanged_t(struct g_consumer *, const char *);
typedef void g_dumpconf_t(struct sbuf *, const char *, struct g_geom *, struct g_consumer *,
    struct g_provider *);
typedef int g_access_t(struct g_provider *, int, int, int);
typedef void g_orphan_t(struct g_consumer *);
typedef int g_ioctl_t(struct g_provider *, u_long, void *, int, struct thread *);
typedef void g_provgone_t(struct g_provider *);
typedef void g_resize_t(struct g_consumer *);

struct g_class {
	const char *name;
	u_int version;
	u_int spare0;
	g_taste_t *taste;
#if GEOM_FREEBSD_RELEASE == 14
	void *config;	/* 14 only: the old config method, never set. */
#endif
	g_ctl_req_t *ctlreq;
	g_init_t *init;
	g_fini_t *fini;
	g_ctl_destroy_geom_t *destroy_geom;
	/* Defaults for the geoms of the class. */
	g_start_t *start;
	g_spoiled_t *spoiled;
	g_attrchanged_t *attrchanged;
	g_dumpconf_t *dumpconf;
	g_access_t *access;
	g_orphan_t *orphan;
	g_ioctl_t *ioctl;
	g_provgone_t *providergone;
	g_resize_t *resize;
	void *spare1;
	void *spare2;
	/* GEOM's own. */
	LIST_ENTRY(g_class) class;
	LIST_HEAD(, g_geom) geom;
};

#define G_GEOM_WITHER 0x01

struct g_geom {
	char *name;
	struct g_class *class;
	LIST_ENTRY(g_geom) geom;
	LIST_HEAD(, g_consumer) consumer;
	LIST_HEAD(, g_provider) provider;
	TAILQ_ENTRY(g_geom) geoms;
	int rank;
	g_start_t *start;
	g_spoiled_t *spoiled;
	g_attrchanged_t *attrchanged;
	g_dumpconf_t *dumpconf;
	g_access_t *access;
	g_orphan_t *orphan;
	g_ioctl_t *ioctl;
	g_provgone_t *providergone;
	g_resize_t *resize;
	void *spare0;
	void *spare1;
	void *softc;
	unsigned flags;
};

#define G_CF_DIRECT_SEND 0x10
#define G_CF_DIRECT_RECEIVE 0x20

struct g_consumer {
	struct g_geom *geom;
	LIST_ENTRY(g_consumer) consumer;
	struct g_provider *provider;
	LIST_ENTRY(g_consumer) consumers;
	int acr, acw, ace;
	int flags;
	struct devstat *stat;
	u_int nstart, nend;
	void *private;
	u_int index;
};

#define G_PF_ACCEPT_UNMAPPED 0x8
#define G_PF_DIRECT_SEND 0x10
#define G_PF_DIRECT_RECEIVE 0x20

struct g_geom_alias {
	LIST_ENTRY(g_geom_alias) ga_next;
	const char *ga_alias;
};

struct g_provider {
	char *name;
	LIST_ENTRY(g_provider) provider;
	struct g_geom *geom;
	LIST_HEAD(, g_consumer) consumers;
	int acr, acw, ace;
	int error;
	TAILQ_ENTRY(g_provider) orphan;
	off_t mediasize;
	u_int sectorsize;
	off_t stripesize;
	off_t stripeoffset;
	struct devstat *stat;
	u_int spare1;
	u_int spare2;
	u_int flags;
	LIST_HEAD(, g_geom_alias) aliases;
	void *private;
	u_int index;
};

/* geom_subr.c */
struct g_geom *g_new_geomf(struct g_class *mp, const char *fmt, ...) __printflike(2, 3);
struct g_provider *g_new_providerf(struct g_geom *gp, const char *fmt, ...) __printflike(2, 3);
struct g_consumer *g_new_consumer(struct g_geom *gp);
int g_attach(struct g_consumer *cp, struct g_provider *pp);
void g_detach(struct g_consumer *cp);
void g_destroy_consumer(struct g_consumer *cp);
void g_destroy_geom(struct g_geom *gp);
void g_wither_geom(struct g_geom *gp, int error);
void g_error_provider(struct g_provider *pp, int error);
struct g_provider *g_provider_by_name(const char *name);
int g_access(struct g_consumer *cp, int dcr, int dcw, int dce);
int g_handleattr_str(struct bio *bp, const char *attribute, const char *str);

/* geom_io.c */
struct bio *g_clone_bio(struct bio *bp);
void g_destroy_bio(struct bio *bp);
void g_io_request(struct bio *bp, struct g_consumer *cp);
void g_io_deliver(struct bio *bp, int error);
void g_std_done(struct bio *bp);

/* geom.h's allocation helpers. */
static inline void *
g_malloc(int size, int flags)
{
	return (geom_rs_malloc((size_t)size, M_GEOM, flags));
}

static inline void
g_free(void *ptr)
{
	geom_rs_free(ptr, M_GEOM);
}

/* -- sys/sbuf.h ------------------------------------------------------------------- */

int sbuf_printf(struct sbuf *s, const char *fmt, ...) __printflike(2, 3);

/* -- sys/geom/geom_ctl.h ------------------------------------------------------------- */

void *gctl_get_param(struct gctl_req *req, const char *param, int *len);
const char *gctl_get_asciiparam(struct gctl_req *req, const char *param);
void *gctl_get_paraml(struct gctl_req *req, const char *param, int len);
void *gctl_get_paraml_opt(struct gctl_req *req, const char *param, int len);
int gctl_error(struct gctl_req *req, const char *fmt, ...) __printflike(2, 3);

/* -- the twins --------------------------------------------------------------------- */

/* The class tables, for Runtime::load_class_raw. */
extern struct g_class g_cnop_class;
extern struct g_class g_cstripe_class;

/* One size or offset of the header's structures, named "struct" or "struct.field". */
struct twin_layout {
	const char *tl_name;
	size_t tl_value;
};

/* Every size and offset above, ending with an entry whose name is NULL. */
const struct twin_layout *twin_layout(void);

/* kern.geom.cstripe.fast: read by the start path as g_stripe's own tunable is. */
extern int g_cstripe_fast;

#endif /* !GEOM_KPI_H */
