/*
 * CSTRIPE: the C twin of classes/stripe, written as a FreeBSD developer writes a GEOM
 * class against geom.h, for the instruction counts of geom-bench.
 *
 * A device deals its address space out to N components in stripes of 2^shift bytes:
 * stripe k lives on component k mod N, in row k / N of it.  The I/O path is gstripe's
 * "economic" one, as the Rust class runs it by default: one clone per stripe piece, each
 * pointing into the request's own buffer (or its page array), all queued before any is
 * sent, so the parent is delivered by whichever clone comes home last.  FLUSH and SPEEDUP
 * go to every component; anything else (GETATTR included) is refused with EOPNOTSUPP.
 *
 * The completion folds a clone into its parent with atomic operations, as geom-core's
 * Fanout does for the Rust class, where g_stripe.c takes its softc mutex; the comparison
 * is then between the languages and frameworks, not between locking schemes.
 *
 * The start path tests kern.geom.cstripe.fast with the same conditions the Rust class
 * tests its "fast" tunable against, so both do the same work on the way in.  The twin has
 * no gathering mode: a request fast mode would take is served the economic way (and
 * counted).  Fast mode is off by default in both, and the benchmark leaves it off.
 *
 * There is no on-disk label:
 *     geom cstripe create [-s stripesize] name prov prov ...
 * makes cstripe/<name> at once ("stripesize" an intmax_t parameter, 65536 if left out).
 * Losing any component withers the device.
 */

#include "geom_kpi.h"

#define G_CSTRIPE_CLASS_NAME "CSTRIPE"
#define G_CSTRIPE_PREFIX "cstripe/"

/* kern.geom.cstripe.fast, and how often the twin served such a request economically. */
int g_cstripe_fast = 0;
static volatile uint64_t g_cstripe_fast_economic;

struct g_cstripe_softc {
	u_int sc_ndisks;
	u_int sc_shift;
	off_t sc_stripesize;
	struct g_provider *sc_provider;
	struct g_consumer *sc_disks[];
};

static void g_cstripe_done(struct bio *cbp);

/* Send every clone on the queue to the consumer its bio_caller2 names. */
static void
g_cstripe_send(struct bio_queue *queue)
{
	struct g_consumer *cp;
	struct bio *cbp;

	while ((cbp = TAILQ_FIRST(queue)) != NULL) {
		TAILQ_REMOVE_HEAD(queue, bio_queue);
		cp = cbp->bio_caller2;
		cbp->bio_caller2 = NULL;
		g_io_request(cbp, cp);
	}
}

/* Nothing was sent: take the clones back and fail the request. */
static void
g_cstripe_fail(struct bio *bp, struct bio_queue *queue, int error)
{
	struct bio *cbp;

	while ((cbp = TAILQ_FIRST(queue)) != NULL) {
		TAILQ_REMOVE_HEAD(queue, bio_queue);
		bp->bio_children--;
		g_destroy_bio(cbp);
	}
	g_io_deliver(bp, error);
}

static void
g_cstripe_start_economic(struct g_cstripe_softc *sc, struct bio *bp)
{
	struct bio_queue queue;
	struct g_consumer *cp;
	struct bio *cbp;
	off_t stripesize, row, start, left, len, done;
	uint64_t stripeno;
	u_int no;
	int ma_offset;

	stripesize = sc->sc_stripesize;
	stripeno = (uint64_t)bp->bio_offset >> sc->sc_shift;
	no = stripeno % sc->sc_ndisks;
	row = (off_t)(stripeno / sc->sc_ndisks) << sc->sc_shift;
	start = bp->bio_offset & (stripesize - 1);

	TAILQ_INIT(&queue);
	for (done = 0, left = bp->bio_length; left > 0; done += len, left -= len) {
		len = stripesize - start;
		if (len > left)
			len = left;
		cp = sc->sc_disks[no];
		if (__predict_false(cp == NULL)) {
			g_cstripe_fail(bp, &queue, ENXIO);
			return;
		}
		cbp = g_clone_bio(bp);
		if (__predict_false(cbp == NULL)) {
			g_cstripe_fail(bp, &queue, ENOMEM);
			return;
		}
		TAILQ_INSERT_TAIL(&queue, cbp, bio_queue);
		cbp->bio_offset = row + start;
		cbp->bio_length = len;
		if ((bp->bio_flags & BIO_UNMAPPED) != 0) {
			ma_offset = bp->bio_ma_offset + (int)done;
			cbp->bio_ma += ma_offset / PAGE_SIZE;
			cbp->bio_ma_offset = ma_offset & PAGE_MASK;
			cbp->bio_ma_n = (int)((cbp->bio_ma_offset + len + PAGE_MASK) / PAGE_SIZE);
		} else if (bp->bio_data != NULL)
			cbp->bio_data = bp->bio_data + done;
		cbp->bio_done = g_cstripe_done;
		cbp->bio_caller2 = cp;
		start = 0;
		if (++no == sc->sc_ndisks) {
			no = 0;
			row += stripesize;
		}
	}
	g_cstripe_send(&queue);
}

/* FLUSH and SPEEDUP: the same request to every component. */
static void
g_cstripe_pushdown(struct g_cstripe_softc *sc, struct bio *bp)
{
	struct bio_queue queue;
	struct g_consumer *cp;
	struct bio *cbp;
	u_int no;

	TAILQ_INIT(&queue);
	for (no = 0; no < sc->sc_ndisks; no++) {
		cp = sc->sc_disks[no];
		if (cp == NULL) {
			g_cstripe_fail(bp, &queue, ENXIO);
			return;
		}
		cbp = g_clone_bio(bp);
		if (cbp == NULL) {
			g_cstripe_fail(bp, &queue, ENOMEM);
			return;
		}
		TAILQ_INSERT_TAIL(&queue, cbp, bio_queue);
		cbp->bio_done = g_cstripe_done;
		cbp->bio_caller2 = cp;
	}
	g_cstripe_send(&queue);
}

static void
g_cstripe_start(struct bio *bp)
{
	struct g_cstripe_softc *sc;

	sc = bp->bio_to->geom->softc;
	switch (bp->bio_cmd) {
	case BIO_READ:
	case BIO_WRITE:
	case BIO_DELETE:
		break;
	case BIO_FLUSH:
	case BIO_SPEEDUP:
		g_cstripe_pushdown(sc, bp);
		return;
	default:
		g_io_deliver(bp, EOPNOTSUPP);
		return;
	}
	if (g_cstripe_fast && bp->bio_cmd != BIO_DELETE &&
	    (uint64_t)bp->bio_length <= maxphys &&
	    bp->bio_length >= sc->sc_stripesize * sc->sc_ndisks &&
	    (bp->bio_flags & BIO_UNMAPPED) == 0 && bp->bio_data != NULL)
		atomic_add_64(&g_cstripe_fast_economic, 1);
	g_cstripe_start_economic(sc, bp);
}

/*
 * A clone is home.  Clones of one request complete on different threads, so the parent's
 * error, byte count and count of clones home are updated atomically; the clone that makes
 * the count whole delivers the parent.
 */
static void
g_cstripe_done(struct bio *cbp)
{
	struct bio *pbp;
	int error;

	pbp = cbp->bio_parent;
	error = cbp->bio_error;
	if (__predict_false(error != 0))
		(void)atomic_cmpset_acq_int(&pbp->bio_error, 0, error);
	atomic_add_acq_64(&pbp->bio_completed, cbp->bio_completed);
	g_destroy_bio(cbp);
	if (atomic_fetchadd_acq_int(&pbp->bio_inbed, 1) + 1 == pbp->bio_children)
		g_io_deliver(pbp, atomic_load_acq_int(&pbp->bio_error));
}

/*
 * Opens go to every component, plus one exclusive count held while the device is open
 * at all, so nobody writes underneath it.
 */
static int
g_cstripe_access(struct g_provider *pp, int dr, int dw, int de)
{
	struct g_geom *gp;
	struct g_consumer *cp, *undo;
	int error;

	gp = pp->geom;
	if (pp->acr == 0 && pp->acw == 0 && pp->ace == 0)
		de++;
	if (pp->acr + dr == 0 && pp->acw + dw == 0 && pp->ace + de == 0)
		de--;
	LIST_FOREACH(cp, &gp->consumer, consumer) {
		error = g_access(cp, dr, dw, de);
		if (error != 0) {
			LIST_FOREACH(undo, &gp->consumer, consumer) {
				if (undo == cp)
					break;
				(void)g_access(undo, -dr, -dw, -de);
			}
			return (error);
		}
	}
	return (0);
}

static void
g_cstripe_orphan(struct g_consumer *cp)
{
	struct g_geom *gp;

	gp = cp->geom;
	if ((gp->flags & G_GEOM_WITHER) == 0)
		g_wither_geom(gp, ENXIO);
}

/* The device's provider is gone, so no request can reach the softc any more. */
static void
g_cstripe_providergone(struct g_provider *pp)
{
	struct g_geom *gp;
	struct g_cstripe_softc *sc;

	gp = pp->geom;
	sc = gp->softc;
	gp->softc = NULL;
	if (sc != NULL)
		g_free(sc);
}

static u_int
g_cstripe_lcm(u_int a, u_int b)
{
	u_int x, y, t;

	for (x = a, y = b; y != 0; t = x % y, x = y, y = t)
		;
	return (a / x * b);
}

/* Undo a half-made device that never got a provider. */
static void
g_cstripe_discard(struct g_geom *gp)
{
	struct g_consumer *cp;

	while ((cp = LIST_FIRST(&gp->consumer)) != NULL) {
		if (cp->provider != NULL)
			g_detach(cp);
		g_destroy_consumer(cp);
	}
	g_free(gp->softc);
	gp->softc = NULL;
	g_destroy_geom(gp);
}

static void
g_cstripe_ctl_create(struct gctl_req *req, struct g_class *mp)
{
	struct g_cstripe_softc *sc;
	struct g_provider *pp, *newpp;
	struct g_consumer *cp;
	struct g_geom *gp;
	intmax_t *sizep, stripesize;
	const char *name, *pname;
	off_t persize, size;
	u_int ndisks, no, sectorsize, shift;
	int *nargs, error, unmapped;
	char param[16];

	nargs = gctl_get_paraml(req, "nargs", sizeof(*nargs));
	if (nargs == NULL)
		return;
	if (*nargs < 3) {
		gctl_error(req, "Too few arguments.");
		return;
	}
	ndisks = (u_int)*nargs - 1;
	sizep = gctl_get_paraml_opt(req, "stripesize", sizeof(*sizep));
	stripesize = sizep != NULL ? *sizep : 65536;
	if (stripesize <= 0 || stripesize > (1 << 30) || (stripesize & (stripesize - 1)) != 0) {
		gctl_error(req, "Invalid stripe size %jd: it must be a power of two.", stripesize);
		return;
	}
	for (shift = 0; ((intmax_t)1 << shift) != stripesize; shift++)
		;
	name = gctl_get_asciiparam(req, "arg0");
	if (name == NULL) {
		gctl_error(req, "No 'arg%d' argument.", 0);
		return;
	}
	LIST_FOREACH(gp, &mp->geom, geom) {
		if ((gp->flags & G_GEOM_WITHER) == 0 && strcmp(gp->name, name) == 0) {
			gctl_error(req, "Device %s already configured.", name);
			return;
		}
	}

	gp = g_new_geomf(mp, "%s", name);
	sc = g_malloc((int)(sizeof(*sc) + ndisks * sizeof(sc->sc_disks[0])), M_WAITOK | M_ZERO);
	sc->sc_ndisks = ndisks;
	sc->sc_shift = shift;
	sc->sc_stripesize = stripesize;
	gp->softc = sc;

	persize = 0;
	sectorsize = 1;
	unmapped = 1;
	for (no = 0; no < ndisks; no++) {
		snprintf(param, sizeof(param), "arg%u", no + 1);
		pname = gctl_get_asciiparam(req, param);
		if (pname == NULL) {
			gctl_error(req, "No '%s' argument.", param);
			g_cstripe_discard(gp);
			return;
		}
		pp = g_provider_by_name(pname);
		if (pp == NULL || pp->mediasize < stripesize) {
			gctl_error(req, "Provider %s is invalid.", pname);
			g_cstripe_discard(gp);
			return;
		}
		cp = g_new_consumer(gp);
		cp->flags |= G_CF_DIRECT_SEND | G_CF_DIRECT_RECEIVE;
		cp->index = no;
		error = g_attach(cp, pp);
		if (error != 0) {
			gctl_error(req, "Can't attach disk %s to %s (error=%d).", pname, name, error);
			g_cstripe_discard(gp);
			return;
		}
		sc->sc_disks[no] = cp;
		if (persize == 0 || pp->mediasize < persize)
			persize = pp->mediasize;
		sectorsize = g_cstripe_lcm(sectorsize, pp->sectorsize);
		if ((pp->flags & G_PF_ACCEPT_UNMAPPED) == 0)
			unmapped = 0;
	}
	/* Every component holds as many whole stripes as the smallest one. */
	persize -= persize % stripesize;
	size = persize * ndisks;

	newpp = g_new_providerf(gp, G_CSTRIPE_PREFIX "%s", gp->name);
	newpp->flags |= G_PF_DIRECT_SEND | G_PF_DIRECT_RECEIVE;
	/* Only while nothing here copies data: no gathering mode asked for. */
	if (unmapped && !g_cstripe_fast)
		newpp->flags |= G_PF_ACCEPT_UNMAPPED;
	newpp->mediasize = size;
	newpp->sectorsize = sectorsize;
	newpp->stripesize = stripesize;
	newpp->stripeoffset = 0;
	sc->sc_provider = newpp;
	g_error_provider(newpp, 0);
}

static void
g_cstripe_ctlreq(struct gctl_req *req, struct g_class *mp, const char *verb)
{
	if (strcmp(verb, "create") == 0) {
		g_cstripe_ctl_create(req, mp);
		return;
	}
	gctl_error(req, "Unknown verb.");
}

static int
g_cstripe_destroy_geom(struct gctl_req *req __attribute__((unused)),
    struct g_class *mp __attribute__((unused)), struct g_geom *gp)
{
	struct g_provider *pp;

	pp = LIST_FIRST(&gp->provider);
	if (pp != NULL && (pp->acr != 0 || pp->acw != 0 || pp->ace != 0))
		return (EBUSY);
	g_wither_geom(gp, ENXIO);
	return (0);
}

struct g_class g_cstripe_class = {
	.name = G_CSTRIPE_CLASS_NAME,
	.version = G_VERSION,
	.ctlreq = g_cstripe_ctlreq,
	.destroy_geom = g_cstripe_destroy_geom,
	.start = g_cstripe_start,
	.access = g_cstripe_access,
	.orphan = g_cstripe_orphan,
	.spoiled = g_cstripe_orphan,
	.providergone = g_cstripe_providergone,
};
