-- Distances on compressed and out-of-line (TOASTed) values.  A toasted
-- argument that repeats from row to row (an InitPlan, a join's outer value)
-- is detoasted once and cached; the cache must never serve a stale value.

-- 1,000 compressible dimensions: stored compressed, inline
CREATE TABLE vz (id int, v vector(1000));
INSERT INTO vz SELECT i, array_fill(i % 7, ARRAY[1000])::vector
FROM generate_series(1, 20) i;
-- 4,000 incompressible dimensions (16 kB): stored out of line
CREATE TABLE vx (id int, v vector(4000));
INSERT INTO vx SELECT i, (SELECT array_agg(sin(i * 1000 + j)::real) FROM generate_series(1, 4000) j)::vector
FROM generate_series(1, 20) i;
SELECT count(*) FILTER (WHERE pg_column_compression(v) IS NOT NULL) AS compressed,
       max(pg_column_size(v)) < 4000 * 4 AS smaller
FROM vz;
SELECT count(*) FILTER (WHERE pg_column_compression(v) IS NOT NULL) AS compressed,
       pg_relation_size('vx') < 20 * 4000 AS heap_holds_pointers_only
FROM vx;

-- the query vector from a subquery (an InitPlan): the nearest is itself
SELECT id, v <-> (SELECT v FROM vz WHERE id = 3) AS d
FROM vz ORDER BY v <-> (SELECT v FROM vz WHERE id = 3), id LIMIT 4;
SELECT id FROM vx ORDER BY v <-> (SELECT v FROM vx WHERE id = 17) LIMIT 1;
SELECT id FROM vx ORDER BY v <=> (SELECT v FROM vx WHERE id = 5) LIMIT 1;

-- every pair, every operator: toasted arguments give exactly what detoasted
-- copies (re-read from text) give, while the outer value changes row by row
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SELECT count(*) AS mismatches FROM vz a, vz b
WHERE (a.v <-> b.v) IS DISTINCT FROM (a.v::text::vector <-> b.v::text::vector)
   OR (a.v <#> b.v) IS DISTINCT FROM (a.v::text::vector <#> b.v::text::vector)
   OR (a.v <+> b.v) IS DISTINCT FROM (a.v::text::vector <+> b.v::text::vector)
   OR (a.v <=> b.v) IS DISTINCT FROM (a.v::text::vector <=> b.v::text::vector);
SELECT count(*) AS mismatches FROM vx a, vx b
WHERE (a.v <-> b.v) IS DISTINCT FROM (a.v::text::vector <-> b.v::text::vector)
   OR (a.v <#> b.v) IS DISTINCT FROM (a.v::text::vector <#> b.v::text::vector)
   OR (a.v <+> b.v) IS DISTINCT FROM (a.v::text::vector <+> b.v::text::vector)
   OR (a.v <=> b.v) IS DISTINCT FROM (a.v::text::vector <=> b.v::text::vector);
-- and after the stored values change under the same call site
PREPARE near(int) AS SELECT id FROM vz ORDER BY v <-> (SELECT v FROM vz WHERE id = $1), id LIMIT 1;
EXECUTE near(3);
UPDATE vz SET v = array_fill(100, ARRAY[1000])::vector WHERE id = 3;
EXECUTE near(3);
EXECUTE near(5);
RESET enable_hashjoin;
RESET enable_mergejoin;
DROP TABLE vz, vx;
