# Build a geom-rs class into ${KMOD}.ko through FreeBSD's own module rules, on a FreeBSD host.
#
# A class's Makefile sets KMOD (geom_<class>) and CRATE (its cargo package), then includes
# this file. cargo compiles the class for x86_64-unknown-none exactly as `cargo xtask kmod`
# does; bsd.kmod.mk then links the result with the system's ldscript.kmod.amd64, localises
# the symbols and strips it, as for any C module. Untested: no FreeBSD machine was available
# where this was written; `cargo xtask kmod` is the tested path.
#
#   make                          # FreeBSD 15
#   make FREEBSD=14               # layouts and module metadata for FreeBSD 14
#   make SYSDIR=/path/to/src/sys  # another kernel source tree (bsd.kmod.mk's own variable)

CARGO?=		cargo
FREEBSD?=	15
WORKSPACE:=	${.PARSEDIR:H}
CARGO_TARGET_DIR?=	${WORKSPACE}/target
RUST_ARCHIVE=	${CARGO_TARGET_DIR}/x86_64-unknown-none/kmod/lib${CRATE:S/-/_/g}.a

.if ${FREEBSD} == 15
RUST_FEATURES=
.else
RUST_FEATURES=	--features geom-core/freebsd-${FREEBSD}
.endif

# No C sources: the module is the one object cargo's archive holds.
SRCS=
OBJS=		${KMOD}_rust.o
CLEANFILES+=	${KMOD}_rust.o

${KMOD}_rust.o: .PHONY
	cd ${WORKSPACE} && env RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=${CARGO_TARGET_DIR} \
	    ${CARGO} rustc --quiet --package ${CRATE} --lib --crate-type staticlib \
	    --target x86_64-unknown-none --profile kmod -Zbuild-std=core,alloc \
	    --config profile.kmod.package.compiler_builtins.codegen-units=10000 \
	    --config 'target.x86_64-unknown-none.rustflags=["-Zfmt-debug=none"]' \
	    ${RUST_FEATURES} -- -Zfunction-sections=no
	${LD} -r --whole-archive -o ${.TARGET} ${RUST_ARCHIVE}

.include <bsd.kmod.mk>
