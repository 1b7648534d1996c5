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
