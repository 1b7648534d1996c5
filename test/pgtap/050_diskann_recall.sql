-- omen_diskann finds the true nearest neighbours: recall@10 on 10,000
-- clustered vectors of 32 dimensions, at default settings, for each
-- operator class, and again after half the rows are deleted, vacuumed away
-- and replaced by as many new ones.
--
-- Catches: a graph built or searched badly (wrong neighbour selection,
-- entry point, codes or lookup tables, or a metric wired to the wrong kernel or operator
-- class), seen as recall@10 below 0.95 on 100 held-out query points; a
-- VACUUM that repairs the graph poorly around deleted nodes, or inserts
-- that link badly into a repaired graph, seen as recall@10 below 0.93
-- after the churn; an index that returns fewer than 10 rows for a query.
-- The recall values are in the test descriptions.
--
-- VACUUM cannot run inside a transaction block, so this file runs its
-- statements one by one (no BEGIN) and drops what it made at the end.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS omen;
DROP TABLE IF EXISTS dr_centres, dr_points, dr_items, dr_queries, dr_new, dr_result;
SET jit = off;
RESET omen.diskann_search_list_size;
RESET omen.diskann_rerank;
SELECT setseed(0.4242);
SELECT plan(21);

-- 50 centres uniform in [-2, 2]^32; each point is a random centre plus
-- noise of standard deviation 1 per dimension (a sum of four uniforms),
-- so clusters overlap somewhat
CREATE TABLE dr_centres AS
SELECT c, array_agg(((random() * 2 - 1) * 2)::real ORDER BY d) AS x
FROM generate_series(1, 50) c, generate_series(1, 32) d GROUP BY c;
CREATE FUNCTION pg_temp.dr_point(c int) RETURNS vector LANGUAGE sql VOLATILE AS $$
	SELECT array_agg(x[d] + ((random() + random() + random() + random() - 2) * sqrt(3))::real
	                 ORDER BY d)::vector(32)
	FROM dr_centres, generate_series(1, 32) d WHERE dr_centres.c = $1
$$;
-- 10,100 points: every 101st is held out as a query, the rest are the table
CREATE TABLE dr_points AS
SELECT i, pg_temp.dr_point(1 + floor(random() * 50)::int) AS v
FROM generate_series(1, 10100) i;
CREATE TABLE dr_items (id int PRIMARY KEY, v vector(32));
INSERT INTO dr_items SELECT i, v FROM dr_points WHERE i % 101 <> 0;
CREATE TABLE dr_queries AS SELECT i AS qid, v FROM dr_points WHERE i % 101 = 0;
ANALYZE dr_items;

SELECT is((SELECT count(*) FROM dr_items), 10000::bigint, '10,000 rows of 32 dimensions');
SELECT is((SELECT count(*) FROM dr_queries), 100::bigint, '100 held-out query points');

CREATE INDEX dr_l2 ON dr_items USING omen_diskann (v vector_l2_ops);
CREATE INDEX dr_ip ON dr_items USING omen_diskann (v vector_ip_ops);
CREATE INDEX dr_cos ON dr_items USING omen_diskann (v vector_cosine_ops);
CREATE INDEX dr_l1 ON dr_items USING omen_diskann (v vector_l1_ops);

SELECT is(current_setting('omen.diskann_search_list_size') || ' ' || current_setting('omen.diskann_rerank'),
          '100 0', 'omen.diskann_search_list_size and omen.diskann_rerank are at their defaults, 100 and 0 (the whole list)');
SELECT is((SELECT string_agg(format('%s R=%s L=%s alpha=%s bits=%s trained=%s', metric, max_neighbors,
                                    build_list_size, alpha::numeric(3,2), quantization_bits, trained), ', '
                             ORDER BY metric)
           FROM pg_class i, omen_diskann_info(i.oid) x
           WHERE i.relname IN ('dr_l2', 'dr_ip', 'dr_cos', 'dr_l1')),
          'cosine R=32 L=100 alpha=1.20 bits=2 trained=t, inner_product R=32 L=100 alpha=1.20 bits=2 trained=t, '
          'l1 R=32 L=100 alpha=1.20 bits=2 trained=t, l2 R=32 L=100 alpha=1.20 bits=2 trained=t',
          'four indexes with the default options (2-bit codes, trained), one per operator class');

-- the 10 nearest rows of each query point, under operator op
CREATE FUNCTION pg_temp.dr_knn(op text) RETURNS text LANGUAGE sql AS $$
	SELECT format('SELECT q.qid, s.id FROM dr_queries q, LATERAL '
	              '(SELECT id FROM dr_items ORDER BY v %s q.v LIMIT 10) s', op)
$$;

-- set the scan types for the rest of the transaction: through the index,
-- or exact (sequential scan and sort, no index)
CREATE FUNCTION pg_temp.dr_scans(use_index bool) RETURNS void LANGUAGE sql AS $$
	SELECT set_config('enable_indexscan', CASE WHEN use_index THEN 'on' ELSE 'off' END, true),
	       set_config('enable_seqscan', CASE WHEN use_index THEN 'off' ELSE 'on' END, true),
	       set_config('enable_bitmapscan', 'off', true);
$$;

-- the plan of the k-NN query, through the index or exact
CREATE FUNCTION pg_temp.dr_plan(op text, use_index bool) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text := '';
	l text;
BEGIN
	PERFORM pg_temp.dr_scans(use_index);
	FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || pg_temp.dr_knn(op) LOOP
		r := r || l || E'\n';
	END LOOP;
	RETURN r;
END
$$;

-- recall@10 of the index against the exact answer, and how many rows the
-- index returned (10 per query expected)
CREATE FUNCTION pg_temp.dr_recall(op text, OUT recall float8, OUT nrows bigint)
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_temp.dr_scans(false);
	EXECUTE 'CREATE TEMP TABLE dr_exact AS ' || pg_temp.dr_knn(op);
	PERFORM pg_temp.dr_scans(true);
	EXECUTE 'CREATE TEMP TABLE dr_approx AS ' || pg_temp.dr_knn(op);
	SELECT count(*) INTO nrows FROM dr_approx;
	SELECT count(*)::float8 / (SELECT count(*) FROM dr_exact) INTO recall
	FROM dr_exact JOIN dr_approx USING (qid, id);
	DROP TABLE dr_exact, dr_approx;
END
$$;

CREATE TEMP TABLE dr_ops (op text, idx text, name text, ord int);
INSERT INTO dr_ops VALUES ('<->', 'dr_l2', 'l2', 1), ('<#>', 'dr_ip', 'ip', 2),
	('<=>', 'dr_cos', 'cosine', 3), ('<+>', 'dr_l1', 'l1', 4);

-- each query is answered by its operator class's index, the exact answer
-- by no index
SELECT ok(bool_and(pg_temp.dr_plan(op, true) ~ ('Index Scan using ' || idx || ' on dr_items')
                   AND pg_temp.dr_plan(op, false) !~ 'Index'),
          'each k-NN query scans its own index; the exact answers scan none')
FROM dr_ops;

CREATE TEMP TABLE dr_result (phase text, name text, ord int, recall float8, nrows bigint);
INSERT INTO dr_result SELECT 'build', name, ord, r.recall, r.nrows
FROM dr_ops, pg_temp.dr_recall(op) r;

SELECT is(nrows, 1000::bigint, format('%s: the index returns 10 rows for each of the 100 queries', name))
FROM dr_result WHERE phase = 'build' ORDER BY ord;
SELECT cmp_ok(recall, '>=', 0.95::float8,
              format('%s: recall@10 = %s >= 0.95 at default settings', name, round(recall::numeric, 3)))
FROM dr_result WHERE phase = 'build' ORDER BY ord;

-- churn: delete half the rows, VACUUM, insert as many new ones from the
-- same distribution; l2 and cosine are measured again
DROP INDEX dr_ip, dr_l1;
DELETE FROM dr_items WHERE random() < 0.5;
CREATE TABLE dr_new AS SELECT count(*) AS n FROM dr_items;
UPDATE dr_new SET n = 10000 - n;
VACUUM dr_items;
SELECT is((SELECT format('%s live, %s deleted, %s free, entry live %s', live_nodes, deleted_nodes, free_slots, entry_live)
           FROM omen_diskann_info('dr_l2')),
          (SELECT format('%s live, 0 deleted, %s free, entry live t', 10000 - n, n) FROM dr_new),
          'l2: VACUUM removed the deleted half from the index and swept their slots free');
-- half-way: the vacuumed index (5,000 rows) against the exact answer
INSERT INTO dr_result SELECT 'vacuum', name, ord, r.recall, r.nrows
FROM dr_ops, pg_temp.dr_recall(op) r WHERE name IN ('l2', 'cosine');
SELECT cmp_ok(recall, '>=', 0.93::float8,
              format('%s after deleting half and VACUUM: recall@10 = %s >= 0.93',
                     name, round(recall::numeric, 3)))
FROM dr_result WHERE phase = 'vacuum' ORDER BY ord;
INSERT INTO dr_items
SELECT 100000 + i, pg_temp.dr_point(1 + floor(random() * 50)::int)
FROM generate_series(1, (SELECT n FROM dr_new)) i;
SELECT ok((SELECT n FROM dr_new) BETWEEN 4500 AND 5500 AND (SELECT count(*) FROM dr_items) = 10000,
          format('%s rows deleted and as many inserted: 10,000 rows again', (SELECT n FROM dr_new)));
ANALYZE dr_items;

INSERT INTO dr_result SELECT 'churn', name, ord, r.recall, r.nrows
FROM dr_ops, pg_temp.dr_recall(op) r WHERE name IN ('l2', 'cosine');

SELECT is(nrows, 1000::bigint, format('%s after the churn: the index returns 10 rows for each query', name))
FROM dr_result WHERE phase = 'churn' ORDER BY ord;
SELECT cmp_ok(recall, '>=', 0.93::float8,
              format('%s after deleting half, VACUUM and refilling: recall@10 = %s >= 0.93',
                     name, round(recall::numeric, 3)))
FROM dr_result WHERE phase = 'churn' ORDER BY ord;

SELECT * FROM finish();
DROP TABLE dr_centres, dr_points, dr_items, dr_queries, dr_new, dr_result, dr_ops;
