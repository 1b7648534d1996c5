-- Distance operators and vector functions obey their definitions.
--
-- Catches: a kernel that sums wrongly (missed tail elements, wrong lane
-- reduction), operators wired to the wrong function, asymmetric distances,
-- cosine distance outside [0, 2] through rounding, and l2_normalize or
-- vector_norm that do not agree with plain SQL arithmetic on the elements.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS omen;
SELECT setseed(0.77);
SELECT plan(22);

-- triples (a, b, c) of random vectors, every dimension from 1 to 130 and
-- then some up to 2000, so that every SIMD tail length is covered
CREATE TEMP TABLE trip (id int, d int, a vector, b vector, c vector);
CREATE FUNCTION pg_temp.rv(d int, scale float8) RETURNS vector AS $$
	SELECT array_agg(x)::vector
	FROM (SELECT ((random() * 2 - 1) * scale)::real AS x FROM generate_series(1, d)) s
$$ LANGUAGE sql VOLATILE;
INSERT INTO trip
SELECT n, d, pg_temp.rv(d, s), pg_temp.rv(d, s), pg_temp.rv(d, s)
FROM (SELECT n, CASE WHEN n <= 130 THEN n ELSE 131 + (n * 97) % 1870 END AS d,
             CASE n % 3 WHEN 0 THEN 1 WHEN 1 THEN 100 ELSE 0.001 END AS s
      FROM generate_series(1, 250) n) g;
-- a vector that is b shifted: cosine of almost-parallel vectors
INSERT INTO trip SELECT id + 1000, d, a, a + a, a * a FROM trip WHERE id <= 50;

-- the same distances computed in float8 in SQL, element by element
CREATE TEMP TABLE ref AS
SELECT t.id,
       sqrt(sum((x - y) ^ 2)) AS l2,
       sum(x * y) AS ip,
       sum(abs(x * y)) AS ip_abs,
       sum(abs(x - y)) AS l1,
       sqrt(sum(x * x)) AS na,
       sqrt(sum(y * y)) AS nb
FROM trip t,
     LATERAL (SELECT u.x::float8 AS x, w.y::float8 AS y
              FROM unnest(t.a::real[]) WITH ORDINALITY u(x, o)
              JOIN unnest(t.b::real[]) WITH ORDINALITY w(y, o) USING (o)) e
GROUP BY t.id;

-- relative tolerance for float4 kernels against float8 sums
CREATE FUNCTION pg_temp.near(got float8, want float8, scale float8) RETURNS bool AS $$
	SELECT abs(got - want) <= 1e-5 * greatest(abs(want), scale) + 1e-30
$$ LANGUAGE sql IMMUTABLE;

SELECT is((SELECT count(*) FROM trip), 300::bigint, '300 vector triples');

-- definitions
SELECT is((SELECT count(*) FROM trip JOIN ref USING (id)
           WHERE NOT pg_temp.near(a <-> b, l2, 0)), 0::bigint,
          '<-> is sqrt of the sum of squared differences');
SELECT is((SELECT count(*) FROM trip JOIN ref USING (id)
           WHERE NOT pg_temp.near(a <#> b, -ip, ip_abs)), 0::bigint,
          '<#> is minus the dot product');
SELECT is((SELECT count(*) FROM trip JOIN ref USING (id)
           WHERE NOT pg_temp.near(a <+> b, l1, 0)), 0::bigint,
          '<+> is the sum of absolute differences');
SELECT is((SELECT count(*) FROM trip JOIN ref USING (id)
           WHERE NOT pg_temp.near(a <=> b, 1 - ip / (na * nb), ip_abs / (na * nb))), 0::bigint,
          '<=> is 1 - a.b / (|a| |b|)');
SELECT is((SELECT count(*) FROM trip JOIN ref USING (id)
           WHERE NOT pg_temp.near(vector_norm(a), na, 0)), 0::bigint,
          'vector_norm is sqrt of the sum of squares');

-- operators and functions agree exactly
SELECT is((SELECT count(*) FROM trip
           WHERE l2_distance(a, b) <> a <-> b
              OR inner_product(a, b) <> -(a <#> b)
              OR cosine_distance(a, b) <> a <=> b
              OR l1_distance(a, b) <> a <+> b), 0::bigint,
          'l2_distance, inner_product, cosine_distance, l1_distance match their operators');

-- symmetry, exactly
SELECT is((SELECT count(*) FROM trip WHERE a <-> b <> b <-> a), 0::bigint, '<-> is symmetric');
SELECT is((SELECT count(*) FROM trip WHERE a <+> b <> b <+> a), 0::bigint, '<+> is symmetric');
SELECT is((SELECT count(*) FROM trip WHERE a <=> b <> b <=> a), 0::bigint, '<=> is symmetric');
SELECT is((SELECT count(*) FROM trip WHERE a <#> b <> b <#> a), 0::bigint, '<#> is symmetric');

-- identity
SELECT is((SELECT count(*) FROM trip WHERE a <-> a <> 0 OR a <+> a <> 0), 0::bigint,
          'a vector is at distance 0 from itself (<->, <+>)');

-- ranges
SELECT is((SELECT count(*) FROM trip
           WHERE NOT (a <=> b BETWEEN 0 AND 2 AND a <=> a BETWEEN 0 AND 2
                      AND a <=> (a - a - a) BETWEEN 0 AND 2)), 0::bigint,
          'cosine distance lies in [0, 2], also of a vector with itself and its opposite');
SELECT ok((SELECT bool_and(a <-> b >= 0 AND a <+> b >= 0) FROM trip),
          'L2 and L1 distances are not negative');

-- triangle inequality (with float4 slack)
SELECT is((SELECT count(*) FROM trip
           WHERE a <-> c > (a <-> b) + (b <-> c) + 1e-5 * ((a <-> b) + (b <-> c))), 0::bigint,
          'triangle inequality for <->');
SELECT is((SELECT count(*) FROM trip
           WHERE a <+> c > (a <+> b) + (b <+> c) + 1e-5 * ((a <+> b) + (b <+> c))), 0::bigint,
          'triangle inequality for <+>');

-- l2_normalize
SELECT is((SELECT count(*) FROM trip WHERE abs(vector_norm(l2_normalize(a)) - 1) > 1e-6), 0::bigint,
          'l2_normalize gives norm 1');
SELECT is((SELECT count(*) FROM trip WHERE l2_normalize(a) <=> a > 1e-6), 0::bigint,
          'l2_normalize keeps the direction');
SELECT is((SELECT count(*) FROM trip JOIN ref USING (id)
           WHERE NOT pg_temp.near(l2_normalize(a) <#> l2_normalize(b), -(ip / (na * nb)), ip_abs / (na * nb))),
          0::bigint,
          'inner product of normalized vectors is the cosine similarity');
SELECT is(l2_normalize('[3,4]')::text, '[0.6,0.8]', 'l2_normalize([3,4]) is [0.6,0.8]');

-- known values
SELECT results_eq(
  $$SELECT '[1,2,3]'::vector <-> '[4,6,3]', '[1,2,3]'::vector <#> '[4,5,6]',
           '[1,0]'::vector <=> '[0,1]', '[1,2,3]'::vector <+> '[4,0,3]'$$,
  $$VALUES (5::float8, -32::float8, 1::float8, 5::float8)$$,
  'known distances: 3-4-5 triangle, dot 32, orthogonal cosine 1, L1 5');
SELECT throws_ok($$SELECT '[1,2]'::vector <-> '[1,2,3]'$$, '22000', NULL,
                 'distance between vectors of different dimensions is an error');

SELECT * FROM finish();
ROLLBACK;
