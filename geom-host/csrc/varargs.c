/*
 * geom-host: the variadic functions of the GEOM KPI.
 *
 * Rust cannot define C-variadic functions on stable, so each one lives here: it formats its
 * arguments with the C library's vsnprintf (measuring first, so any length works) and hands
 * the finished NUL-terminated string to one Rust function. No FreeBSD header is available
 * on the host, so the structures are declared as incomplete types and the prototypes are
 * written out by hand; they must match geom_core::sys::kpi and the Rust definitions.
 *
 * A string that cannot be formatted (out of memory, or an encoding error in the format)
 * reaches Rust as NULL; each Rust function documents what it does with that.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct bio;
struct g_class;
struct g_geom;
struct g_provider;
struct gctl_req;
struct sbuf;

typedef void g_event_t(void *arg, int flag);

/* FreeBSD's G_N_EVENTREFS (sys/geom/geom_event.c): references one event can carry. */
#define G_N_EVENTREFS 20

/* Implemented in Rust (the runtime, topology and events modules). */
struct g_geom *geom_host_new_geom(struct g_class *mp, const char *name);
struct g_provider *geom_host_new_provider(struct g_geom *gp, const char *name);
void geom_host_provider_add_alias(struct g_provider *pp, const char *name);
int geom_host_post_event(g_event_t *func, void *arg, int flag, void **refs, int nrefs,
    int wait);

/* Implemented in Rust (gctl.rs, sbuf.rs, confxml.rs). */
int geom_host_gctl_error(struct gctl_req *req, const char *msg);
void geom_host_gctl_msg(struct gctl_req *req, int error, const char *msg);
int geom_host_sbuf_bcat(struct sbuf *s, const void *buf, size_t len);
int geom_host_sbuf_format_failed(struct sbuf *s);
void geom_host_print_bio(const char *prefix, const struct bio *bp, const char *suffix);

/* The KPI defined here. */
struct g_geom *g_new_geomf(struct g_class *mp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
struct g_provider *g_new_providerf(struct g_geom *gp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void g_provider_add_alias(struct g_provider *pp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int g_post_event(g_event_t *func, void *arg, int flag, ...);
int g_waitfor_event(g_event_t *func, void *arg, int flag, ...);
int gctl_error(struct gctl_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void gctl_msg(struct gctl_req *req, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sbuf_printf(struct sbuf *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int sbuf_vprintf(struct sbuf *s, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void g_print_bio(const char *prefix, const struct bio *bp, const char *fmtsuffix, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Format into a malloc'ed string: measure with a copy of the arguments, then print.
 * Returns NULL when fmt is NULL, the format fails or memory is short; free() the result.
 */
static char *vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static char *
vformat(const char *fmt, va_list ap)
{
	va_list measure;
	char *buf;
	int len;

	if (fmt == NULL)
		return (NULL);
	va_copy(measure, ap);
	len = vsnprintf(NULL, 0, fmt, measure);
	va_end(measure);
	if (len < 0)
		return (NULL);
	buf = malloc((size_t)len + 1);
	if (buf == NULL)
		return (NULL);
	if (vsnprintf(buf, (size_t)len + 1, fmt, ap) != len) {
		free(buf);
		return (NULL);
	}
	return (buf);
}

struct g_geom *
g_new_geomf(struct g_class *mp, const char *fmt, ...)
{
	struct g_geom *gp;
	va_list ap;
	char *name;

	va_start(ap, fmt);
	name = vformat(fmt, ap);
	va_end(ap);
	gp = geom_host_new_geom(mp, name);
	free(name);
	return (gp);
}

struct g_provider *
g_new_providerf(struct g_geom *gp, const char *fmt, ...)
{
	struct g_provider *pp;
	va_list ap;
	char *name;

	va_start(ap, fmt);
	name = vformat(fmt, ap);
	va_end(ap);
	pp = geom_host_new_provider(gp, name);
	free(name);
	return (pp);
}

void
g_provider_add_alias(struct g_provider *pp, const char *fmt, ...)
{
	va_list ap;
	char *name;

	va_start(ap, fmt);
	name = vformat(fmt, ap);
	va_end(ap);
	geom_host_provider_add_alias(pp, name);
	free(name);
}

/*
 * Collect the NULL-terminated reference list. At most G_N_EVENTREFS references are stored;
 * when the caller passed more, nrefs comes out as G_N_EVENTREFS + 1 (the array still holds
 * only G_N_EVENTREFS entries) so the Rust side can report the bug without reading past it.
 */
static int
collect_refs(va_list ap, void **refs)
{
	void *p;
	int n;

	for (n = 0; n < G_N_EVENTREFS; n++) {
		p = va_arg(ap, void *);
		if (p == NULL)
			return (n);
		refs[n] = p;
	}
	p = va_arg(ap, void *);
	if (p != NULL)
		return (G_N_EVENTREFS + 1);
	return (n);
}

int
g_post_event(g_event_t *func, void *arg, int flag, ...)
{
	void *refs[G_N_EVENTREFS];
	va_list ap;
	int nrefs;

	va_start(ap, flag);
	nrefs = collect_refs(ap, refs);
	va_end(ap);
	return (geom_host_post_event(func, arg, flag, refs, nrefs, 0));
}

int
g_waitfor_event(g_event_t *func, void *arg, int flag, ...)
{
	void *refs[G_N_EVENTREFS];
	va_list ap;
	int nrefs;

	va_start(ap, flag);
	nrefs = collect_refs(ap, refs);
	va_end(ap);
	return (geom_host_post_event(func, arg, flag, refs, nrefs, 1));
}

int
gctl_error(struct gctl_req *req, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int error;

	va_start(ap, fmt);
	msg = vformat(fmt, ap);
	va_end(ap);
	error = geom_host_gctl_error(req, msg);
	free(msg);
	return (error);
}

void
gctl_msg(struct gctl_req *req, int error, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = vformat(fmt, ap);
	va_end(ap);
	geom_host_gctl_msg(req, error, msg);
	free(msg);
}

int
sbuf_vprintf(struct sbuf *s, const char *fmt, va_list ap)
{
	char small[256];
	va_list again;
	char *big;
	int len, ret;

	if (fmt == NULL)
		return (geom_host_sbuf_format_failed(s));
	/* Most dumpconf lines are short: try a stack buffer first. */
	va_copy(again, ap);
	len = vsnprintf(small, sizeof(small), fmt, again);
	va_end(again);
	if (len < 0)
		return (geom_host_sbuf_format_failed(s));
	if ((size_t)len < sizeof(small))
		return (geom_host_sbuf_bcat(s, small, (size_t)len));
	big = vformat(fmt, ap);
	if (big == NULL)
		return (geom_host_sbuf_format_failed(s));
	ret = geom_host_sbuf_bcat(s, big, (size_t)len);
	free(big);
	return (ret);
}

int
sbuf_printf(struct sbuf *s, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = sbuf_vprintf(s, fmt, ap);
	va_end(ap);
	return (ret);
}

void
g_print_bio(const char *prefix, const struct bio *bp, const char *fmtsuffix, ...)
{
	va_list ap;
	char *suffix;

	va_start(ap, fmtsuffix);
	suffix = vformat(fmtsuffix, ap);
	va_end(ap);
	geom_host_print_bio(prefix, bp, suffix);
	free(suffix);
}
