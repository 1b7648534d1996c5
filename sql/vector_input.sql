-- Text input and output of vector: the form pgvector users type, exact
-- round trips, and a clear error (with where it is) for every bad literal.

-- accepted forms
SELECT '[1,2,3]'::vector;
SELECT '  [ 1 , -2.5 ,3e2 ]  '::vector;
SELECT E'[\t1,\n2]'::vector;
SELECT '[+1.5, -0, 0]'::vector;
SELECT '[1.17549435e-38, 3.4028235e+38, -3.4028235e+38, 1e-45]'::vector;

-- output is the shortest text that reads back to the same float4 values
SELECT '[0.1, 0.2, 0.30000001, 1234567.9, 1e20, 1.5e-7]'::vector;
SELECT v::text::vector = v AS round_trips
FROM (VALUES ('[0.1,0.2,0.3]'::vector),
             ('[3.4028235e+38,1.1754944e-38,1e-45]'),
             ('[123456.78,-0.000123,7]')) AS t(v);

-- the largest vector
SELECT vector_dims(('[' || array_to_string(array_fill(1, ARRAY[16000]), ',') || ']')::vector);

-- malformed: each error says where
SELECT ''::vector;
SELECT '1,2,3'::vector;
SELECT '[1,2,3'::vector;
SELECT '[1,,2]'::vector;
SELECT '[1,2,]'::vector;
SELECT '[,1]'::vector;
SELECT '[1 2]'::vector;
SELECT '[1,a]'::vector;
SELECT '[1,2]]'::vector;
SELECT '[1,2] x'::vector;
SELECT '[1, - 2]'::vector;
SELECT '{1,2}'::vector;

-- empty, too long, not finite, out of float4 range
SELECT '[]'::vector;
SELECT '[ ]'::vector;
SELECT ('[' || array_to_string(array_fill(1, ARRAY[16001]), ',') || ']')::vector;
SELECT '[NaN]'::vector;
SELECT '[1,nan,2]'::vector;
SELECT '[Infinity]'::vector;
SELECT '[-inf]'::vector;
SELECT '[1e39]'::vector;
SELECT '[-1e39]'::vector;
SELECT '[1e-50]'::vector;

-- nothing is stored when a row is rejected
CREATE TABLE vin (id int, v vector);
INSERT INTO vin VALUES (1, '[1,2]');
INSERT INTO vin VALUES (2, '[1,NaN]');
INSERT INTO vin VALUES (3, '[1,2]'), (4, '[x]');
SELECT * FROM vin ORDER BY id;
DROP TABLE vin;

-- decimals are read exactly as float4in (strtof) reads them, bit for bit:
-- random forms (signs, up to 20 digits, fractions, exponents), then cases
-- at the edges of the fast path (halfway between two floats, 19 and 20
-- digits, 10^22 and 10^23, hexadecimal, a bare exponent mark)
SELECT setseed(0.3);
CREATE TABLE vin_dec AS
SELECT (CASE WHEN random() < 0.3 THEN '-' WHEN random() < 0.1 THEN '+' ELSE '' END) ||
       CASE WHEN random() < 0.1 THEN '' ELSE (floor(random() * 10 ^ floor(random() * 20)))::numeric::text END ||
       CASE WHEN random() < 0.6 THEN '.' || lpad((floor(random() * 1e9))::numeric::text, 1 + floor(random() * 12)::int, '0') ELSE '' END ||
       CASE WHEN random() < 0.5 THEN (CASE WHEN random() < 0.5 THEN 'e' ELSE 'E' END) || (floor(random() * 39) - 20)::int::text ELSE '' END AS t
FROM generate_series(1, 20000);
INSERT INTO vin_dec VALUES ('16777217'), ('16777219'), ('33554434'), ('-16777217.0'),
  ('0.1'), ('1e22'), ('1e23'), ('9007199254740993'), ('1234567890123456789'),
  ('12345678901234567890'), ('0.000000000000000000001'), ('4.2e-21'), ('0x10'), ('0'),
  ('-0'), ('-0.0e5'), ('007'), ('3.4028235e38'), ('1.17549435e-38'), ('1.5e-45'), ('.5'), ('5.');
DELETE FROM vin_dec WHERE t !~ '^[+-]?([0-9]|\.[0-9])';
SELECT count(*) AS forms, count(*) FILTER (WHERE float4send((('[' || t || ']')::vector::real[])[1]) IS DISTINCT FROM float4send(t::real)) AS mismatches
FROM vin_dec;
-- short integers (read by their own loop) in one vector, separated by
-- commas and spaces, equal float4in's values element by element; 8 digits
-- and integers followed by a fraction or an exponent take the general path
SELECT ('[' || string_agg(t, CASE WHEN i % 3 = 0 THEN ' , ' ELSE ',' END ORDER BY i) || ']')::vector::real[] =
       array_agg(t::real ORDER BY i) AS ints_equal
FROM (SELECT i, (CASE WHEN i % 5 = 0 THEN '-' ELSE '' END) ||
                (floor(random() * 10 ^ (i % 9)))::bigint::text AS t
      FROM generate_series(1, 2000) i) s;
SELECT '[-0, 0, 0000007, 12345678, 1234567, 9999999.5, 3e2, -16777217]'::vector;
SELECT '[12-3]'::vector;
SELECT '[1e5,2E-3,3e+2]'::vector;
SELECT '[1e]'::vector;
DROP TABLE vin_dec;
