-- Every omen.simd level this CPU accepts computes the same distances.
--
-- Catches: an AVX2 or AVX-512 kernel that differs from the scalar one (tail
-- handling, lane reduction, a wrong intrinsic), a level that is accepted but
-- not actually switched to, and omen_simd_level() reporting something other
-- than what was set.  Levels the CPU lacks must be refused (SQLSTATE 0A000)
-- and are skipped here.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS omen;
SELECT setseed(0.31);
SELECT plan(14);

CREATE TEMP TABLE pairs (id int, a vector, b vector);
INSERT INTO pairs
SELECT n, x.a, x.b
FROM generate_series(1, 400) n,
     LATERAL (SELECT array_agg(((random() * 2 - 1) * 50)::real)::vector AS a,
                     array_agg(((random() * 2 - 1) * 50)::real)::vector AS b
              FROM generate_series(1, CASE WHEN n <= 200 THEN n ELSE n * 7 END) i) x;

-- results per level
CREATE TEMP TABLE by_level (level text, id int, l2 float8, ip float8, cos float8, l1 float8,
                            norm float8, nrm text, ok bool);

-- Switch to a level, or return false if this CPU refuses it
CREATE FUNCTION pg_temp.try_level(lvl text) RETURNS bool AS $$
BEGIN
	PERFORM set_config('omen.simd', lvl, true);
	RETURN true;
EXCEPTION
	WHEN feature_not_supported THEN
		RETURN false;
END
$$ LANGUAGE plpgsql;

-- Compute every distance of every pair at one level; false if unsupported
CREATE FUNCTION pg_temp.run_level(lvl text) RETURNS bool AS $$
BEGIN
	IF NOT pg_temp.try_level(lvl) THEN
		RETURN false;
	END IF;
	INSERT INTO by_level
	SELECT lvl, id, a <-> b, a <#> b, a <=> b, a <+> b, vector_norm(a),
	       l2_normalize(a)::text, true
	FROM pairs;
	RETURN true;
END
$$ LANGUAGE plpgsql;

CREATE TEMP TABLE supported AS
SELECT lvl, pg_temp.run_level(lvl) AS yes, current_setting('omen.simd') AS setting
FROM unnest(ARRAY['scalar', 'avx2', 'avx512']) lvl;

-- number of pairs where level lvl differs from scalar beyond float4 rounding
CREATE FUNCTION pg_temp.mismatches(lvl text) RETURNS bigint AS $$
	SELECT count(*)
	FROM by_level s JOIN by_level o USING (id)
	WHERE s.level = 'scalar' AND o.level = lvl
	  AND (abs(o.l2 - s.l2) > 1e-5 * greatest(s.l2, 1e-3)
	       OR abs(o.ip - s.ip) > 1e-4 * greatest(abs(s.ip), 1)
	       OR abs(o.cos - s.cos) > 1e-5
	       OR abs(o.l1 - s.l1) > 1e-5 * greatest(s.l1, 1e-3)
	       OR abs(o.norm - s.norm) > 1e-5 * s.norm)
$$ LANGUAGE sql;

-- at one level: pairs where a vector is not at distance 0 from itself
CREATE FUNCTION pg_temp.identity_fails(lvl text) RETURNS bigint AS $$
BEGIN
	PERFORM set_config('omen.simd', lvl, true);
	RETURN (SELECT count(*) FROM pairs
	        WHERE a <-> a <> 0 OR a <+> a <> 0 OR NOT (a <=> a BETWEEN 0 AND 2));
END
$$ LANGUAGE plpgsql;

SELECT ok((SELECT yes FROM supported WHERE lvl = 'scalar'), 'the scalar level is always accepted');
SELECT is((SELECT count(*) FROM by_level WHERE level = 'scalar'), 400::bigint,
          'scalar results for 400 pairs of 1..2800 dimensions');

-- set_config runs in the same statement, so check each level separately too
SELECT is(pg_temp.try_level('scalar') AND omen_simd_level() = 'scalar', true,
          'omen_simd_level() reports scalar after SET omen.simd = scalar');
SELECT is(pg_temp.identity_fails('scalar'), 0::bigint,
          'scalar: every vector is at distance 0 from itself, cosine in [0, 2]');

SELECT CASE WHEN (SELECT yes FROM supported WHERE lvl = 'avx2')
	THEN collect_tap(
		is(pg_temp.try_level('avx2') AND omen_simd_level() = 'avx2', true,
		   'omen_simd_level() reports avx2 after SET omen.simd = avx2'),
		is(pg_temp.mismatches('avx2'), 0::bigint, 'avx2 distances match scalar'),
		is(pg_temp.identity_fails('avx2'), 0::bigint,
		   'avx2: every vector is at distance 0 from itself, cosine in [0, 2]'))
	ELSE skip('this CPU does not support avx2', 3) END;

SELECT CASE WHEN (SELECT yes FROM supported WHERE lvl = 'avx512')
	THEN collect_tap(
		is(pg_temp.try_level('avx512') AND omen_simd_level() = 'avx512', true,
		   'omen_simd_level() reports avx512 after SET omen.simd = avx512'),
		is(pg_temp.mismatches('avx512'), 0::bigint, 'avx512 distances match scalar'),
		is(pg_temp.identity_fails('avx512'), 0::bigint,
		   'avx512: every vector is at distance 0 from itself, cosine in [0, 2]'))
	ELSE skip('this CPU does not support avx512', 3) END;

-- auto picks the best level the CPU accepts
SELECT is(pg_temp.try_level('auto') AND omen_simd_level() = (
		SELECT lvl FROM supported WHERE yes
		ORDER BY array_position(ARRAY['scalar', 'avx2', 'avx512'], lvl) DESC LIMIT 1),
	true, 'omen.simd = auto uses the best supported level');

SELECT throws_ok($$SET LOCAL omen.simd = 'sse9'$$, '22023', NULL,
                 'an unknown level is refused');

SELECT is(pg_temp.try_level('auto') AND (SELECT count(*) FROM pairs WHERE a <-> b <> l2_distance(a, b)) = 0,
          true, 'operators and functions agree under auto');

-- l2_normalize goes through the kernels too: same text at every level, up to rounding
SELECT is((SELECT count(*) FROM by_level s JOIN by_level o USING (id)
           WHERE s.level = 'scalar' AND o.level <> 'scalar'
             AND s.nrm::vector <-> o.nrm::vector > 1e-5), 0::bigint,
          'l2_normalize agrees across levels');

SELECT * FROM finish();
ROLLBACK;
