/*
 * CNOP: the C twin of classes/nop, written as a FreeBSD developer writes a GEOM class
 * against geom.h, for the instruction counts of geom-bench.
 *
 * Only what a plain read or write meets on its way through NOP is reproduced, and in the
 * same order the Rust class does it: the per-device counters (atomics, as the Rust class
 * keeps them, where gnop takes its softc mutex), the count_until_fail countdown, the read
 * and write failure dice (arc4random through the platform seam, which is the random source
 * the Rust class draws from too), the GEOM::physpath answer, the offset, and one clone sent
 * to the single consumer with g_std_done as its completion.  Opens are passed to the
 * consumer; a lost provider below withers the geom.  The delay knobs and the
 * configure/reset/destroy verbs are left out: they are not on the measured path.
 *
 * geom cnop create [-o offset] [-r rfailprob] [-w wfailprob] [-e error]
 *                  [-c count_until_fail] [-z physpath] dev ...
 * makes <dev>.cnop for each dev (the options arrive as the Rust class's do: intmax_t
 * parameters named after the long options, and an ASCII "physpath").
 */

#include "geom_kpi.h"

#define G_CNOP_CLASS_NAME "CNOP"
#define G_CNOP_SUFFIX ".cnop"

struct g_cnop_softc {
	struct g_consumer *sc_cp;
	off_t sc_offset;
	char *sc_physpath;
	/* The failure knobs. */
	int sc_error;
	volatile u_int sc_rfailprob;
	volatile u_int sc_wfailprob;
	volatile uint64_t sc_count_until_fail;
	/* What dumpconf shows. */
	volatile uint64_t sc_reads;
	volatile uint64_t sc_writes;
	volatile uint64_t sc_deletes;
	volatile uint64_t sc_getattrs;
	volatile uint64_t sc_flushes;
	volatile uint64_t sc_cmd_others;
	volatile uint64_t sc_readbytes;
	volatile uint64_t sc_wrotebytes;
};

static void
g_cnop_count(struct g_cnop_softc *sc, struct bio *bp)
{
	uint64_t len;

	len = bp->bio_length > 0 ? (uint64_t)bp->bio_length : 0;
	switch (bp->bio_cmd) {
	case BIO_READ:
		atomic_add_64(&sc->sc_reads, 1);
		atomic_add_64(&sc->sc_readbytes, len);
		break;
	case BIO_WRITE:
		atomic_add_64(&sc->sc_writes, 1);
		atomic_add_64(&sc->sc_wrotebytes, len);
		break;
	case BIO_DELETE:
		atomic_add_64(&sc->sc_deletes, 1);
		break;
	case BIO_GETATTR:
		atomic_add_64(&sc->sc_getattrs, 1);
		break;
	case BIO_FLUSH:
		atomic_add_64(&sc->sc_flushes, 1);
		break;
	default:
		atomic_add_64(&sc->sc_cmd_others, 1);
		break;
	}
}

/*
 * Every request takes one off count_until_fail while it is set; the one that takes the
 * last makes every read and write fail from then on.
 */
static void
g_cnop_count_down(struct g_cnop_softc *sc)
{
	uint64_t left;

	for (;;) {
		left = atomic_load_64(&sc->sc_count_until_fail);
		if (left == 0)
			return;
		if (atomic_cmpset_64(&sc->sc_count_until_fail, left, left - 1))
			break;
	}
	if (left == 1) {
		atomic_store_int(&sc->sc_rfailprob, 100);
		atomic_store_int(&sc->sc_wfailprob, 100);
	}
}

static void
g_cnop_start(struct bio *bp)
{
	struct g_cnop_softc *sc;
	struct bio *cbp;
	u_int failprob;

	sc = bp->bio_to->geom->softc;
	g_cnop_count(sc, bp);
	g_cnop_count_down(sc);
	switch (bp->bio_cmd) {
	case BIO_READ:
		failprob = atomic_load_int(&sc->sc_rfailprob);
		break;
	case BIO_WRITE:
		failprob = atomic_load_int(&sc->sc_wfailprob);
		break;
	default:
		failprob = 0;
		break;
	}
	if (failprob != 0 && arc4random() % 100 < failprob) {
		g_io_deliver(bp, sc->sc_error);
		return;
	}
	if (sc->sc_physpath != NULL && bp->bio_cmd == BIO_GETATTR &&
	    g_handleattr_str(bp, "GEOM::physpath", sc->sc_physpath))
		return;
	cbp = g_clone_bio(bp);
	if (cbp == NULL) {
		g_io_deliver(bp, ENOMEM);
		return;
	}
	cbp->bio_offset = bp->bio_offset + sc->sc_offset;
	cbp->bio_done = g_std_done;
	g_io_request(cbp, sc->sc_cp);
}

static int
g_cnop_access(struct g_provider *pp, int dr, int dw, int de)
{
	struct g_consumer *cp;

	cp = LIST_FIRST(&pp->geom->consumer);
	if (cp == NULL)
		return (dr <= 0 && dw <= 0 && de <= 0 ? 0 : ENXIO);
	return (g_access(cp, dr, dw, de));
}

static void
g_cnop_orphan(struct g_consumer *cp)
{
	g_wither_geom(cp->geom, ENXIO);
}

/* The provider is gone, so no request can reach the softc any more. */
static void
g_cnop_providergone(struct g_provider *pp)
{
	struct g_geom *gp;
	struct g_cnop_softc *sc;

	gp = pp->geom;
	sc = gp->softc;
	gp->softc = NULL;
	if (sc == NULL)
		return;
	if (sc->sc_physpath != NULL)
		g_free(sc->sc_physpath);
	g_free(sc);
}

static void
g_cnop_dumpconf(struct sbuf *sb, const char *indent, struct g_geom *gp,
    struct g_consumer *cp, struct g_provider *pp)
{
	struct g_cnop_softc *sc;

	sc = gp->softc;
	if (sc == NULL || cp != NULL || pp != NULL)
		return;
	sbuf_printf(sb, "%s<Offset>%jd</Offset>\n", indent, (intmax_t)sc->sc_offset);
	sbuf_printf(sb, "%s<ReadFailProb>%u</ReadFailProb>\n", indent,
	    atomic_load_int(&sc->sc_rfailprob));
	sbuf_printf(sb, "%s<WriteFailProb>%u</WriteFailProb>\n", indent,
	    atomic_load_int(&sc->sc_wfailprob));
	sbuf_printf(sb, "%s<CountUntilFail>%ju</CountUntilFail>\n", indent,
	    (uintmax_t)atomic_load_64(&sc->sc_count_until_fail));
	sbuf_printf(sb, "%s<Error>%d</Error>\n", indent, sc->sc_error);
	sbuf_printf(sb, "%s<Reads>%ju</Reads>\n", indent, (uintmax_t)atomic_load_64(&sc->sc_reads));
	sbuf_printf(sb, "%s<Writes>%ju</Writes>\n", indent,
	    (uintmax_t)atomic_load_64(&sc->sc_writes));
	sbuf_printf(sb, "%s<Deletes>%ju</Deletes>\n", indent,
	    (uintmax_t)atomic_load_64(&sc->sc_deletes));
	sbuf_printf(sb, "%s<Getattrs>%ju</Getattrs>\n", indent,
	    (uintmax_t)atomic_load_64(&sc->sc_getattrs));
	sbuf_printf(sb, "%s<Flushes>%ju</Flushes>\n", indent,
	    (uintmax_t)atomic_load_64(&sc->sc_flushes));
	sbuf_printf(sb, "%s<Others>%ju</Others>\n", indent,
	    (uintmax_t)atomic_load_64(&sc->sc_cmd_others));
	sbuf_printf(sb, "%s<ReadBytes>%ju</ReadBytes>\n", indent,
	    (uintmax_t)atomic_load_64(&sc->sc_readbytes));
	sbuf_printf(sb, "%s<WroteBytes>%ju</WroteBytes>\n", indent,
	    (uintmax_t)atomic_load_64(&sc->sc_wrotebytes));
}

/* What a create request asks for, checked. */
struct g_cnop_params {
	intmax_t offset;
	intmax_t rfailprob;
	intmax_t wfailprob;
	intmax_t error;
	intmax_t count_until_fail;
	const char *physpath;
};

static int
g_cnop_create(struct gctl_req *req, struct g_class *mp, struct g_provider *pp,
    const struct g_cnop_params *p)
{
	struct g_geom *gp;
	struct g_provider *newpp;
	struct g_consumer *cp;
	struct g_cnop_softc *sc;
	char name[128];
	off_t size;
	size_t len;
	int error;

	if (pp->sectorsize == 0 || p->offset < 0 || p->offset >= pp->mediasize ||
	    p->offset % pp->sectorsize != 0) {
		gctl_error(req, "Invalid offset for provider %s.", pp->name);
		return (EINVAL);
	}
	size = pp->mediasize - p->offset;
	if ((size_t)snprintf(name, sizeof(name), "%s%s", pp->name, G_CNOP_SUFFIX) >=
	    sizeof(name)) {
		gctl_error(req, "Name too long for provider %s.", pp->name);
		return (EINVAL);
	}
	if (g_provider_by_name(name) != NULL) {
		gctl_error(req, "Provider %s already exists.", name);
		return (EEXIST);
	}
	sc = g_malloc(sizeof(*sc), M_WAITOK | M_ZERO);
	sc->sc_offset = p->offset;
	sc->sc_error = p->error > 0 ? (int)p->error : EIO;
	sc->sc_rfailprob = p->rfailprob > 0 ? (u_int)p->rfailprob : 0;
	sc->sc_wfailprob = p->wfailprob > 0 ? (u_int)p->wfailprob : 0;
	sc->sc_count_until_fail = p->count_until_fail > 0 ? (uint64_t)p->count_until_fail : 0;
	if (p->physpath != NULL) {
		len = strlen(p->physpath) + 1;
		sc->sc_physpath = g_malloc((int)len, M_WAITOK);
		memcpy(sc->sc_physpath, p->physpath, len);
	}

	gp = g_new_geomf(mp, "%s", name);
	gp->softc = sc;
	cp = g_new_consumer(gp);
	cp->flags |= G_CF_DIRECT_SEND | G_CF_DIRECT_RECEIVE;
	error = g_attach(cp, pp);
	if (error != 0) {
		gctl_error(req, "Cannot attach to provider %s.", pp->name);
		g_destroy_consumer(cp);
		gp->softc = NULL;
		g_destroy_geom(gp);
		if (sc->sc_physpath != NULL)
			g_free(sc->sc_physpath);
		g_free(sc);
		return (error);
	}
	sc->sc_cp = cp;

	newpp = g_new_providerf(gp, "%s", gp->name);
	newpp->flags |= G_PF_DIRECT_SEND | G_PF_DIRECT_RECEIVE;
	newpp->mediasize = size;
	newpp->sectorsize = pp->sectorsize;
	g_error_provider(newpp, 0);
	return (0);
}

/* An optional intmax_t parameter, or dflt when it is not there. */
static intmax_t
g_cnop_number(struct gctl_req *req, const char *name, intmax_t dflt)
{
	intmax_t *val;

	val = gctl_get_paraml_opt(req, name, sizeof(*val));
	return (val != NULL ? *val : dflt);
}

static void
g_cnop_ctl_create(struct gctl_req *req, struct g_class *mp)
{
	struct g_cnop_params p;
	struct g_provider *pp;
	const char *name;
	char param[16];
	int *nargs, i;

	nargs = gctl_get_paraml(req, "nargs", sizeof(*nargs));
	if (nargs == NULL)
		return;
	if (*nargs <= 0) {
		gctl_error(req, "Missing device(s).");
		return;
	}
	p.offset = g_cnop_number(req, "offset", 0);
	p.rfailprob = g_cnop_number(req, "rfailprob", -1);
	p.wfailprob = g_cnop_number(req, "wfailprob", -1);
	p.error = g_cnop_number(req, "error", -1);
	p.count_until_fail = g_cnop_number(req, "count_until_fail", -1);
	p.physpath = gctl_get_asciiparam(req, "physpath");
	if (p.rfailprob > 100 || p.wfailprob > 100) {
		gctl_error(req, "Invalid '%s' argument", p.rfailprob > 100 ? "rfailprob" : "wfailprob");
		return;
	}
	for (i = 0; i < *nargs; i++) {
		snprintf(param, sizeof(param), "arg%d", i);
		name = gctl_get_asciiparam(req, param);
		if (name == NULL) {
			gctl_error(req, "No 'arg%d' argument.", i);
			return;
		}
		pp = g_provider_by_name(name);
		if (pp == NULL) {
			gctl_error(req, "Provider %s is invalid.", name);
			return;
		}
		if (g_cnop_create(req, mp, pp, &p) != 0)
			return;
	}
}

static void
g_cnop_ctlreq(struct gctl_req *req, struct g_class *mp, const char *verb)
{
	if (strcmp(verb, "create") == 0) {
		g_cnop_ctl_create(req, mp);
		return;
	}
	gctl_error(req, "Unknown verb.");
}

static int
g_cnop_destroy_geom(struct gctl_req *req __attribute__((unused)),
    struct g_class *mp __attribute__((unused)), struct g_geom *gp)
{
	struct g_provider *pp;

	pp = LIST_FIRST(&gp->provider);
	if (pp != NULL && (pp->acr != 0 || pp->acw != 0 || pp->ace != 0))
		return (EBUSY);
	g_wither_geom(gp, ENXIO);
	return (0);
}

struct g_class g_cnop_class = {
	.name = G_CNOP_CLASS_NAME,
	.version = G_VERSION,
	.ctlreq = g_cnop_ctlreq,
	.destroy_geom = g_cnop_destroy_geom,
	.start = g_cnop_start,
	.access = g_cnop_access,
	.orphan = g_cnop_orphan,
	.dumpconf = g_cnop_dumpconf,
	.providergone = g_cnop_providergone,
};
