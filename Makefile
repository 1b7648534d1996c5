# omen: PGXS build.  Sources are picked up by directory so that new files in
# src/, src/simd/ and the access-method folders need no Makefile edit.

EXTENSION = omen
MODULE_big = omen
DATA = $(wildcard sql/omen--*.sql)

SRCS = $(wildcard src/*.c src/simd/*.c src/am_hnsw/*.c src/am_diskann/*.c)
OBJS = $(SRCS:.c=.o)

# pg_regress: every sql/*.sql file except the extension scripts, in name order
REGRESS = $(sort $(basename $(notdir $(filter-out sql/omen--%,$(wildcard sql/*.sql)))))
REGRESS_OPTS = --inputdir=. --load-extension=omen

PG_CONFIG ?= pg_config
# PostgreSQL's headers go in as system headers: -Wextra is for omen's code,
# and the server headers do not build clean under it (-Wsign-compare).
PG_CPPFLAGS = -I$(srcdir)/src -isystem $(shell $(PG_CONFIG) --includedir-server) -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
# make OMEN_ASSERT=1: compile omen's Assert()s in (the server need not be a
# cassert build).  make OMEN_WERROR=1: fail on any warning.
ifeq ($(OMEN_ASSERT),1)
PG_CPPFLAGS += -DUSE_ASSERT_CHECKING
endif
ifeq ($(OMEN_WERROR),1)
PG_CPPFLAGS += -Werror
endif
EXTRA_CLEAN = results regression.diffs regression.out tmp_check

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: rebuild every object when any of
# omen's headers changes (a stale object with an old struct layout is a
# memory corruption waiting to happen).
HEADERS = $(wildcard src/*.h src/*/*.h)
$(OBJS): $(HEADERS)
$(OBJS:.o=.bc): $(HEADERS)
