-- omen_hnsw's graph read from the raw pages (layout of src/am_hnsw/hnsw.h,
-- little-endian), for tests and scripts/hnsw-churn.sh: pageinspect, and
--   omen_hnsw_entry(index): the meta page's entry point, its level and m;
--   omen_hnsw_elements(index): every element tuple that is not free, with
--     its level, state (0 live, 1 deleted) and the valid TIDs of layer 0.
-- Superuser only (get_raw_page).
CREATE EXTENSION IF NOT EXISTS pageinspect;
CREATE OR REPLACE FUNCTION omen_u16(p bytea, o int) RETURNS int IMMUTABLE STRICT LANGUAGE sql
	AS 'SELECT get_byte(p, o) + 256 * get_byte(p, o + 1)';
CREATE OR REPLACE FUNCTION omen_tid_at(p bytea, o int) RETURNS tid IMMUTABLE STRICT LANGUAGE sql
	AS $$SELECT format('(%s,%s)', omen_u16(p, o)::bigint * 65536 + omen_u16(p, o + 2),
	                   omen_u16(p, o + 4))::tid$$;
-- meta page contents start at 24: m at +12, entry_level at +18, entry at +20
CREATE OR REPLACE FUNCTION omen_hnsw_entry(idx regclass, OUT entry tid, OUT entry_level int, OUT m int)
	LANGUAGE sql AS $$
SELECT omen_tid_at(p, 44), (omen_u16(p, 42) # 32768) - 32768, omen_u16(p, 36)
FROM get_raw_page(idx::text, 0) p
$$;
CREATE OR REPLACE FUNCTION omen_hnsw_elements(idx regclass)
	RETURNS TABLE (tid tid, level int, state int, l0 tid[])
	LANGUAGE sql AS $$
-- data pages only: the page kind (OmenPageOpaqueData.kind, 2 = data) is 4
-- bytes before the page's end; the basis and pivot pages (kind 3) hold no
-- tuples
WITH pages AS (
	SELECT b, p
	FROM generate_series(1, (pg_relation_size(idx) / current_setting('block_size')::int)::int - 1) b,
	     get_raw_page(idx::text, b) p
	WHERE omen_u16(p, current_setting('block_size')::int - 4) = 2),
items AS (
	SELECT b, o, p, omen_u16(p, 24 + 4 * (o - 1)) AS lo, omen_u16(p, 26 + 4 * (o - 1)) AS hi
	FROM pages, generate_series(1, (omen_u16(p, 12) - 24) / 4) o
	WHERE omen_u16(p, 12) > 0),
-- ItemIdData: lp_off 15 bits, lp_flags 2 bits (1 = LP_NORMAL), lp_len
tuples AS (
	SELECT format('(%s,%s)', b, o)::tid AS tid, p, lo & 32767 AS t
	FROM items WHERE (lo >> 15) | ((hi & 1) << 1) = 1),
-- element tuple: type 1, level, state, version, 4 heap TIDs, neighbour TID at 28;
-- neighbour tuple: type 2, version, count, TIDs from 4 (layer 0 first, 2m of them)
elements AS (
	SELECT tid, get_byte(p, t + 1) AS level, get_byte(p, t + 2) AS state,
	       omen_tid_at(p, t + 28) AS ntid
	FROM tuples WHERE get_byte(p, t) = 1 AND get_byte(p, t + 2) <> 2),
neighbours AS (
	SELECT tid, ARRAY(SELECT omen_tid_at(p, t + 4 + 6 * i)
	                  FROM generate_series(0, 2 * (SELECT m FROM omen_hnsw_entry(idx)) - 1) i
	                  WHERE omen_u16(p, t + 8 + 6 * i) <> 0) AS l0
	FROM tuples WHERE get_byte(p, t) = 2)
SELECT e.tid, e.level, e.state, coalesce(n.l0, '{}')
FROM elements e LEFT JOIN neighbours n ON n.tid = e.ntid
$$;
-- The shape a graph at rest must have: the entry point's state (0: live),
-- the live elements, those with an empty layer-0 list, and those reachable
-- from the entry point over layer-0 edges.
CREATE OR REPLACE FUNCTION omen_hnsw_graph_check(idx regclass,
	OUT entry_state int, OUT live bigint, OUT empty bigint, OUT reached bigint)
	LANGUAGE sql AS $$
WITH RECURSIVE e AS MATERIALIZED (SELECT * FROM omen_hnsw_elements(idx)),
r(tid) AS (
	SELECT entry FROM omen_hnsw_entry(idx)
	UNION
	SELECT x FROM r JOIN e USING (tid), unnest(e.l0) x)
SELECT (SELECT state FROM e WHERE tid = (SELECT entry FROM omen_hnsw_entry(idx))),
       (SELECT count(*) FROM e WHERE state = 0),
       (SELECT count(*) FROM e WHERE state = 0 AND cardinality(l0) = 0),
       (SELECT count(*) FROM r JOIN e USING (tid) WHERE e.state = 0)
$$;
