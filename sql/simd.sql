-- The omen.simd setting: the kernel level in use, forcing one, refusing
-- unknown values, and every level this CPU has giving the same distances.

SELECT omen_simd_level() IN ('avx512', 'avx2', 'scalar') AS known_level;
SHOW omen.simd;
SET omen.simd = 'scalar';
SELECT omen_simd_level();
SHOW omen.simd;
SET omen.simd = 'sse9';
SELECT omen_simd_level();
RESET omen.simd;
SELECT omen_simd_level() IN ('avx512', 'avx2', 'scalar') AS known_level;

-- each level the CPU supports agrees with the scalar kernels on vectors of
-- many lengths (relative tolerance 1e-5; the kernels' own unit test checks
-- exact bounds)
CREATE TABLE vs (v vector, w vector);
INSERT INTO vs
SELECT array_agg((sin(i * n) * 10)::real ORDER BY i)::vector,
       array_agg((cos(i + n) * 10)::real ORDER BY i)::vector
FROM generate_series(1, 300) n, generate_series(1, n) i GROUP BY n;
CREATE TEMP TABLE ref AS
SELECT v, w, v <-> w AS l2, v <#> w AS ip, v <=> w AS cos, v <+> w AS l1
FROM vs WITH NO DATA;
SET omen.simd = 'scalar';
INSERT INTO ref SELECT v, w, v <-> w, v <#> w, v <=> w, v <+> w FROM vs;
DO $$
DECLARE
	lvl text;
	bad int;
BEGIN
	FOREACH lvl IN ARRAY ARRAY['avx2', 'avx512'] LOOP
		BEGIN
			PERFORM set_config('omen.simd', lvl, true);
		EXCEPTION WHEN feature_not_supported THEN
			CONTINUE;
		END;
		IF omen_simd_level() <> lvl THEN
			RAISE EXCEPTION 'omen.simd = % but kernels in use are %', lvl, omen_simd_level();
		END IF;
		SELECT count(*) INTO bad FROM ref
		WHERE abs((v <-> w) - l2) > 1e-5 * greatest(1, abs(l2))
		   OR abs((v <#> w) - ip) > 1e-5 * greatest(1, vector_norm(v) * vector_norm(w))
		   OR abs((v <=> w) - cos) > 1e-5
		   OR abs((v <+> w) - l1) > 1e-5 * greatest(1, abs(l1));
		IF bad > 0 THEN
			RAISE EXCEPTION 'omen.simd = %: % of 300 vector pairs disagree with scalar', lvl, bad;
		END IF;
	END LOOP;
	RAISE NOTICE 'all supported levels agree with scalar';
END $$;
RESET omen.simd;
DROP TABLE vs, ref;
