-- Distances, arithmetic, concatenation and comparison.

-- distance operators and their functions agree
SELECT '[1,2,3]'::vector <-> '[4,6,3]' AS l2,
       l2_distance('[1,2,3]', '[4,6,3]') AS l2_fn,
       vector_l2_squared_distance('[1,2,3]', '[4,6,3]') AS l2sq;
SELECT '[1,2,3]'::vector <#> '[4,5,6]' AS neg_ip,
       inner_product('[1,2,3]', '[4,5,6]') AS ip;
SELECT '[1,1]'::vector <=> '[-1,-1]' AS opposite,
       '[1,0]'::vector <=> '[0,2]' AS orthogonal,
       '[1,2]'::vector <=> '[2,4]' AS parallel,
       cosine_distance('[3,4]', '[4,3]') AS cos_fn;
SELECT '[1,2,3]'::vector <+> '[4,0,3]' AS l1,
       l1_distance('[1,2,3]', '[4,0,3]') AS l1_fn;
-- cosine with a zero vector is undefined
SELECT '[0,0]'::vector <=> '[1,1]' AS undefined;
-- distances on long vectors (exercise the SIMD tails)
SELECT array_fill(1, ARRAY[1001])::vector <-> array_fill(3, ARRAY[1001])::vector AS l2_1001,
       array_fill(1, ARRAY[1001])::vector <+> array_fill(3, ARRAY[1001])::vector AS l1_1001,
       array_fill(2, ARRAY[1001])::vector <#> array_fill(3, ARRAY[1001])::vector AS nip_1001;

-- every binary operator rejects vectors of different lengths
SELECT '[1,2]'::vector <-> '[1,2,3]';
SELECT '[1,2]'::vector <#> '[1,2,3]';
SELECT '[1,2]'::vector <=> '[1,2,3]';
SELECT '[1,2]'::vector <+> '[1,2,3]';
SELECT '[1,2]'::vector + '[1,2,3]';
SELECT '[1,2]'::vector - '[1,2,3]';
SELECT '[1,2]'::vector * '[1,2,3]';
SELECT vector_l2_squared_distance('[1,2]', '[1,2,3]');

-- functions
SELECT vector_dims('[1,2,3]'), vector_norm('[3,4]');
SELECT l2_normalize('[3,4]'), l2_normalize('[0,0]');
SELECT subvector('[1,2,3,4,5]', 2, 3);
SELECT subvector('[1,2,3,4,5]', -1, 3);
SELECT subvector('[1,2,3,4,5]', 4, 10);
SELECT subvector('[1,2,3,4,5]', 6, 1);
SELECT subvector('[1,2,3,4,5]', 1, 0);
SELECT subvector('[1,2,3,4,5]', 1, -1);
SELECT subvector('[1,2,3,4,5]', 2147483647, 2147483647);

-- element-wise arithmetic; overflow is an error, never a stored infinity
SELECT '[1,2,3]'::vector + '[4,5,6]', '[1,2,3]'::vector - '[4,5,6]',
       '[1,2,3]'::vector * '[4,5,6]';
SELECT '[3e38]'::vector + '[3e38]';
SELECT '[-3e38]'::vector - '[3e38]';
SELECT '[1e20]'::vector * '[1e20]';

-- concatenation
SELECT '[1,2]'::vector || '[3]';
SELECT array_fill(1, ARRAY[8000])::vector || array_fill(1, ARRAY[8001])::vector;

-- comparison: element by element, then shorter first
SELECT '[1,2]'::vector < '[1,3]', '[1,2]'::vector < '[1,2,0]',
       '[1,2]'::vector = '[1,2]', '[1,2]'::vector <> '[1,2]',
       '[2]'::vector > '[1,9]', '[1,2]'::vector >= '[1,2]',
       '[1,2]'::vector <= '[1,1]', '[-0]'::vector = '[0]';

-- btree: ORDER BY, DISTINCT and UNIQUE work
CREATE TABLE vo (v vector);
INSERT INTO vo VALUES ('[2,1]'), ('[1,2,3]'), ('[1,2]'), ('[1,2]'), ('[-1,5]');
SELECT v FROM vo ORDER BY v;
SELECT DISTINCT v FROM vo ORDER BY v;
CREATE UNIQUE INDEX vo_unique ON vo (v);
DELETE FROM vo WHERE ctid NOT IN (SELECT min(ctid) FROM vo GROUP BY v);
CREATE UNIQUE INDEX vo_unique ON vo (v);
INSERT INTO vo VALUES ('[1,2]');
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM vo WHERE v = '[1,2]';
SELECT * FROM vo WHERE v = '[1,2]';
RESET enable_seqscan;
DROP TABLE vo;

-- exact nearest neighbours by each operator
CREATE TABLE vn (id int, v vector(2));
INSERT INTO vn VALUES (1, '[0,0]'), (2, '[1,1]'), (3, '[3,0]'), (4, '[-2,-2]'), (5, '[0.5,4]');
SELECT id, v <-> '[1,0]' AS d FROM vn ORDER BY v <-> '[1,0]', id LIMIT 3;
SELECT id, v <#> '[1,0]' AS d FROM vn ORDER BY v <#> '[1,0]' LIMIT 3;
SELECT id, v <=> '[1,0]' AS d FROM vn WHERE id <> 1 ORDER BY v <=> '[1,0]' LIMIT 3;
SELECT id, v <+> '[1,0]' AS d FROM vn ORDER BY v <+> '[1,0]', id LIMIT 3;
DROP TABLE vn;
