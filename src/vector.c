/*
 * vector.c
 *	  The vector datatype: input/output, typmod, casts, arithmetic,
 *	  comparison, distances and aggregates.
 *
 * Every value that reaches storage has been checked here: 1 to
 * VECTOR_MAX_DIM elements, all finite.  Functions that compute new vectors
 * (arithmetic, normalisation, aggregates) re-check finiteness, so overflow is
 * an error rather than a stored infinity.
 *
 * Distances go through omen_kernels (src/simd/), the same kernels the index
 * access methods call directly.
 */
#include "postgres.h"

#include <math.h>

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "simd/omen_simd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "vector.h"

/* Allocate a zero-filled vector of the given dimension */
Vector *
InitVector(int dim)
{
	Size		size = VECTOR_SIZE(dim);
	Vector	   *result = (Vector *) palloc0(size);

	SET_VARSIZE(result, size);
	result->dim = dim;
	return result;
}

/* Reject a dimension count outside 1 .. VECTOR_MAX_DIM */
void
CheckVectorDim(int dim)
{
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least 1 dimension")));
	if (dim > VECTOR_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("vector cannot have more than %d dimensions",
						VECTOR_MAX_DIM),
				 errdetail("The value has %d dimensions.", dim)));
}

/* Reject a value whose length differs from the column's vector(n) */
void
CheckExpectedVectorDim(int32 typmod, int dim)
{
	if (typmod != -1 && typmod != dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", typmod, dim)));
}

/* Reject NaN and infinity, which no distance can order */
void
CheckVectorElement(float value)
{
	if (isnan(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("NaN not allowed in vector")));
	if (isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("infinite value not allowed in vector")));
}

/* Error for two operands of different lengths */
static inline void
CheckSameDims(const Vector *a, const Vector *b)
{
	if (a->dim != b->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d",
						a->dim, b->dim)));
}

/* Error for an arithmetic result that left the float4 range */
static inline void
CheckOverflow(float value)
{
	if (unlikely(isinf(value)))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value out of range: overflow")));
}

static inline bool
VectorIsSpace(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
		ch == '\v' || ch == '\f';
}

/* Report a syntax error in a vector literal, saying where it is */
static void
pg_attribute_noreturn()
VectorSyntaxError(const char *lit, const char *pos, const char *expected)
{
	if (*pos == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type vector: \"%s\"", lit),
				 errdetail("Unexpected end of input, expected %s.", expected)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type vector: \"%s\"", lit),
			 errdetail("Expected %s at character %d, found \"%c\".",
					   expected, (int) (pos - lit) + 1, *pos)));
}

/*
 * Decimal to float4 without strtof for the common case, with exactly
 * strtof's result.  A number of at most 19 significant digits and a decimal
 * exponent within +-22 is m * 10^e with m and 10^|e| exact doubles (m <=
 * 2^53), so one multiplication or division gives the correctly rounded
 * double d.  Rounding d to float gives the correctly rounded float unless d
 * is exactly halfway between two floats (then the decimal may have been on
 * either side): that case, and every other form (more digits, larger
 * exponents, hexadecimal, inf, nan), is left to strtof.  Parsing the text
 * of a query vector was a tenth of a 784-dimension index query's time.
 * Returns false, with nothing consumed, when strtof must decide.
 */
static const double vector_pow10[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/*
 * The commonest element of all, an integer of at most 7 digits ([-]digits
 * followed by ',', ']' or a space), is exactly a float: read it in one
 * short loop.  Anything else returns false for the general reader.
 */
static inline bool
VectorParseShortInt(const char *p, const char **endp, float *out)
{
	const char *q = p;
	bool		neg = (*q == '-');
	uint32		m = 0;
	int			n;

	q += neg;
	for (n = 0; n < 8 && (unsigned) (q[n] - '0') < 10; n++)
		m = m * 10 + (uint32) (q[n] - '0');
	if (n == 0 || n > 7 ||
		!(q[n] == ',' || q[n] == ']' || VectorIsSpace(q[n])))
		return false;
	*out = neg ? -(float) m : (float) m;
	*endp = q + n;
	return true;
}

static inline bool
VectorParseFloatFast(const char *p, const char **endp, float *out)
{
	const char *q = p;
	bool		neg = false;
	uint64		m = 0;
	int			ndigits = 0;	/* significant digits in m */
	int			scale = 0;		/* decimal exponent of m's last digit */
	bool		any = false;
	double		d;
	float		f;

	if (*q == '+' || *q == '-')
		neg = (*q++ == '-');
	if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X'))
		return false;			/* hexadecimal */
	for (; *q >= '0' && *q <= '9'; q++)
	{
		any = true;
		if (m == 0 && *q == '0')
			continue;			/* leading zeros */
		if (++ndigits > 19)
			return false;
		m = m * 10 + (*q - '0');
	}
	if (*q == '.')
	{
		q++;
		for (; *q >= '0' && *q <= '9'; q++)
		{
			any = true;
			scale--;
			if (m == 0 && *q == '0')
				continue;
			if (++ndigits > 19)
				return false;
			m = m * 10 + (*q - '0');
		}
	}
	if (!any)
		return false;			/* ".", "inf", "nan", ...: strtof decides */
	if (*q == 'e' || *q == 'E')
	{
		const char *e = q + 1;
		bool		eneg = false;
		int			exp = 0;

		if (*e == '+' || *e == '-')
			eneg = (*e++ == '-');
		if (*e >= '0' && *e <= '9')
		{
			for (; *e >= '0' && *e <= '9'; e++)
			{
				if (exp > 1000)
					return false;
				exp = exp * 10 + (*e - '0');
			}
			scale += eneg ? -exp : exp;
			q = e;
		}
		/* else the number ends before the 'e', as strtof reads it */
	}

	if (m == 0)
	{
		*out = neg ? -0.0f : 0.0f;
		*endp = q;
		return true;
	}
	if (m > (UINT64CONST(1) << 53) || scale < -22 || scale > 22)
		return false;
	d = scale >= 0 ? (double) m * vector_pow10[scale] :
		(double) m / vector_pow10[-scale];
	f = (float) d;
	if ((double) f != d)
	{
		/* halfway between f and its neighbour toward d: strtof decides */
		float		g = nextafterf(f, (double) f < d ? HUGE_VALF : -HUGE_VALF);

		if (((double) f + (double) g) / 2 == d)
			return false;
	}
	*out = neg ? -f : f;
	*endp = q;
	return true;
}

/*
 * vector_in: parse '[1, 2.5, -3e4]'.
 *
 * Whitespace is allowed around the brackets and the elements.  Elements are
 * parsed with strtof, like float4in, and the same range rules apply.
 */
PG_FUNCTION_INFO_V1(vector_in);
Datum
vector_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	const char *p = lit;
	int			dim = 0;
	int			cap = 64;
	float	   *x = palloc(sizeof(float) * cap);
	Vector	   *result;

	while (VectorIsSpace(*p))
		p++;
	if (*p != '[')
		VectorSyntaxError(lit, p, "\"[\"");
	p++;
	while (VectorIsSpace(*p))
		p++;
	if (*p == ']')
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least 1 dimension")));

	for (;;)
	{
		char	   *end;
		float		val;

		while (VectorIsSpace(*p))
			p++;
		if (dim == VECTOR_MAX_DIM)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("vector cannot have more than %d dimensions",
							VECTOR_MAX_DIM)));

		/* strtof would skip leading spaces and accept a sign after them */
		if (*p == '\0' || VectorIsSpace(*p) || *p == ',' || *p == ']')
			VectorSyntaxError(lit, p, "a number");
		if (!VectorParseShortInt(p, (const char **) &end, &val))
		{
			if (!VectorParseFloatFast(p, (const char **) &end, &val))
			{
				errno = 0;
				val = strtof(p, &end);
				if (end == p)
					VectorSyntaxError(lit, p, "a number");
				if (errno == ERANGE && (val == 0.0f || isinf(val)))
					ereport(ERROR,
							(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							 errmsg("\"%s\" is out of range for type vector",
									pnstrdup(p, end - p))));
			}
			CheckVectorElement(val);
		}

		if (dim == cap)
		{
			cap *= 2;
			x = repalloc(x, sizeof(float) * cap);
		}
		x[dim++] = val;
		p = end;

		while (VectorIsSpace(*p))
			p++;
		if (*p == ',')
		{
			p++;
			continue;
		}
		if (*p == ']')
		{
			p++;
			break;
		}
		VectorSyntaxError(lit, p, "\",\" or \"]\"");
	}

	while (VectorIsSpace(*p))
		p++;
	if (*p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type vector: \"%s\"", lit),
				 errdetail("Unexpected characters after \"]\" at character %d.",
						   (int) (p - lit) + 1)));

	CheckExpectedVectorDim(typmod, dim);

	result = InitVector(dim);
	memcpy(result->x, x, sizeof(float) * dim);
	pfree(x);
	PG_RETURN_VECTOR_P(result);
}

/* vector_out: shortest text that reads back to the same floats */
PG_FUNCTION_INFO_V1(vector_out);
Datum
vector_out(PG_FUNCTION_ARGS)
{
	Vector	   *vec = PG_GETARG_VECTOR_P(0);
	int			dim = vec->dim;
	char	   *buf;
	char	   *p;

	/* each element, a comma or bracket each, and the terminator */
	buf = palloc((FLOAT_SHORTEST_DECIMAL_LEN + 1) * dim + 2);
	p = buf;
	*p++ = '[';
	for (int i = 0; i < dim; i++)
	{
		if (i > 0)
			*p++ = ',';
		p += float_to_shortest_decimal_bufn(vec->x[i], p);
	}
	*p++ = ']';
	*p = '\0';

	PG_FREE_IF_COPY(vec, 0);
	PG_RETURN_CSTRING(buf);
}

/* vector_typmod_in: accept vector(n) for 1 <= n <= VECTOR_MAX_DIM */
PG_FUNCTION_INFO_V1(vector_typmod_in);
Datum
vector_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType  *ta = PG_GETARG_ARRAYTYPE_P(0);
	int32	   *tl;
	int			n;

	tl = ArrayGetIntegerTypmods(ta, &n);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid type modifier"),
				 errdetail("vector takes one type modifier, the number of dimensions.")));
	if (*tl < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type vector must be at least 1")));
	if (*tl > VECTOR_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type vector cannot exceed %d",
						VECTOR_MAX_DIM)));
	PG_RETURN_INT32(*tl);
}

/*
 * vector_recv: binary input.  Same layout as on disk: int16 dim, int16
 * reserved (must be 0), then dim float4 values in network byte order.
 */
PG_FUNCTION_INFO_V1(vector_recv);
Datum
vector_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int16		dim;
	int16		unused;
	Vector	   *result;

	dim = pq_getmsgint(buf, sizeof(int16));
	unused = pq_getmsgint(buf, sizeof(int16));
	CheckVectorDim(dim);
	CheckExpectedVectorDim(typmod, dim);
	if (unused != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary vector: reserved field is %d, expected 0",
						unused)));

	result = InitVector(dim);
	for (int i = 0; i < dim; i++)
	{
		result->x[i] = pq_getmsgfloat4(buf);
		CheckVectorElement(result->x[i]);
	}
	PG_RETURN_VECTOR_P(result);
}

/* vector_send: binary output, the layout vector_recv reads */
PG_FUNCTION_INFO_V1(vector_send);
Datum
vector_send(PG_FUNCTION_ARGS)
{
	Vector	   *vec = PG_GETARG_VECTOR_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint(&buf, vec->dim, sizeof(int16));
	pq_sendint(&buf, vec->unused, sizeof(int16));
	for (int i = 0; i < vec->dim; i++)
		pq_sendfloat4(&buf, vec->x[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* vector(vector, typmod, explicit): the length coercion for vector(n) */
PG_FUNCTION_INFO_V1(vector);
Datum
vector(PG_FUNCTION_ARGS)
{
	Vector	   *vec = PG_GETARG_VECTOR_P(0);
	int32		typmod = PG_GETARG_INT32(1);

	CheckExpectedVectorDim(typmod, vec->dim);
	PG_RETURN_VECTOR_P(vec);
}

/* array_to_vector: cast from int4[], float4[], float8[] or numeric[] */
PG_FUNCTION_INFO_V1(array_to_vector);
Datum
array_to_vector(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Vector	   *result;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("array must be one-dimensional"),
				 errdetail("The array has %d dimensions.", ARR_NDIM(array))));
	if (elemtype != INT4OID && elemtype != FLOAT4OID &&
		elemtype != FLOAT8OID && elemtype != NUMERICOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("cannot cast an array of %s to vector",
						format_type_be(elemtype))));

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign,
					  &elems, &nulls, &n);

	CheckVectorDim(n);
	CheckExpectedVectorDim(typmod, n);
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("array must not contain nulls"),
					 errdetail("Element %d is NULL.", i + 1)));

	result = InitVector(n);
	for (int i = 0; i < n; i++)
	{
		float		v;

		switch (elemtype)
		{
			case INT4OID:
				v = (float) DatumGetInt32(elems[i]);
				break;
			case FLOAT4OID:
				v = DatumGetFloat4(elems[i]);
				break;
			case FLOAT8OID:
				{
					double		d = DatumGetFloat8(elems[i]);

					v = (float) d;
					/* a finite float8 beyond the float4 range */
					if (isinf(v) && !isinf(d))
						ereport(ERROR,
								(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
								 errmsg("value out of range for type vector"),
								 errdetail("Element %d is %g.", i + 1, d)));
					break;
				}
			default:			/* NUMERICOID; float4 range checked there */
				v = DatumGetFloat4(DirectFunctionCall1(numeric_float4,
													   elems[i]));
				break;
		}
		CheckVectorElement(v);
		result->x[i] = v;
	}

	pfree(elems);
	pfree(nulls);
	PG_RETURN_VECTOR_P(result);
}

/* vector_to_float4: cast to real[] */
PG_FUNCTION_INFO_V1(vector_to_float4);
Datum
vector_to_float4(PG_FUNCTION_ARGS)
{
	Vector	   *vec = PG_GETARG_VECTOR_P(0);
	Datum	   *d = palloc(sizeof(Datum) * vec->dim);

	for (int i = 0; i < vec->dim; i++)
		d[i] = Float4GetDatum(vec->x[i]);
	PG_RETURN_POINTER(construct_array(d, vec->dim, FLOAT4OID,
									  sizeof(float4), true, TYPALIGN_INT));
}

/*
 * Per-call-site cache of detoasted distance arguments.
 *
 * A query such as ORDER BY v <-> (SELECT v FROM items WHERE id = 42) passes
 * the same compressed or TOASTed datum to every call; detoasting it afresh
 * for each row costs more than the distance (a pglz decompression, or a
 * TOAST fetch).  When an argument arrives compressed or out of line at the
 * same address twice running, keep its detoasted copy in fn_mcxt along with
 * a copy of the raw bytes, and reuse it while the raw bytes match.  Column
 * values of successive rows sit at different addresses, so they never pay
 * for the copy.
 */
typedef struct DetoastCacheSlot
{
	const void *lastptr;		/* address seen on the previous call */
	char	   *raw;			/* copy of the raw (toasted) bytes cached */
	Size		rawlen;
	Vector	   *vec;			/* their detoasted value */
} DetoastCacheSlot;

/* Fetch vector argument argno, detoasted, reusing a cached copy if possible */
static Vector *
GetVectorArgCached(FunctionCallInfo fcinfo, int argno)
{
	struct varlena *raw = (struct varlena *) PG_GETARG_POINTER(argno);
	DetoastCacheSlot *slot;
	Size		rawlen;

	if (!(VARATT_IS_COMPRESSED(raw) || VARATT_IS_EXTERNAL_ONDISK(raw)) ||
		fcinfo->flinfo == NULL || argno > 1)
		return DatumGetVector(PointerGetDatum(raw));

	if (fcinfo->flinfo->fn_extra == NULL)
		fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
								   sizeof(DetoastCacheSlot) * 2);
	slot = &((DetoastCacheSlot *) fcinfo->flinfo->fn_extra)[argno];
	rawlen = VARSIZE_ANY(raw);

	if (slot->vec != NULL && slot->rawlen == rawlen &&
		memcmp(slot->raw, raw, rawlen) == 0)
		return slot->vec;

	if (slot->lastptr != (const void *) raw)
	{
		slot->lastptr = raw;
		return DatumGetVector(PointerGetDatum(raw));
	}

	/* the same address twice running: cache this value */
	if (slot->vec != NULL)
	{
		pfree(slot->raw);
		pfree(slot->vec);
		slot->vec = NULL;
	}
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		slot->raw = palloc(rawlen);
		memcpy(slot->raw, raw, rawlen);
		slot->rawlen = rawlen;
		slot->vec = (Vector *) detoast_attr(raw);
		MemoryContextSwitchTo(old);
	}
	return slot->vec;
}

#define PG_GETARG_VECTOR_CACHED(n) GetVectorArgCached(fcinfo, (n))

/* l2_distance: Euclidean distance */
PG_FUNCTION_INFO_V1(l2_distance);
Datum
l2_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_CACHED(0);
	Vector	   *b = PG_GETARG_VECTOR_CACHED(1);

	CheckSameDims(a, b);
	PG_RETURN_FLOAT8(sqrt((double) omen_kernels->l2sq(a->x, b->x, a->dim)));
}

/* vector_l2_squared_distance: squared Euclidean distance (what indexes order by) */
PG_FUNCTION_INFO_V1(vector_l2_squared_distance);
Datum
vector_l2_squared_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_CACHED(0);
	Vector	   *b = PG_GETARG_VECTOR_CACHED(1);

	CheckSameDims(a, b);
	PG_RETURN_FLOAT8((double) omen_kernels->l2sq(a->x, b->x, a->dim));
}

/* inner_product: dot product */
PG_FUNCTION_INFO_V1(inner_product);
Datum
inner_product(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_CACHED(0);
	Vector	   *b = PG_GETARG_VECTOR_CACHED(1);

	CheckSameDims(a, b);
	PG_RETURN_FLOAT8((double) omen_kernels->ip(a->x, b->x, a->dim));
}

/* vector_negative_inner_product: the <#> operator (smaller is closer) */
PG_FUNCTION_INFO_V1(vector_negative_inner_product);
Datum
vector_negative_inner_product(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_CACHED(0);
	Vector	   *b = PG_GETARG_VECTOR_CACHED(1);

	CheckSameDims(a, b);
	PG_RETURN_FLOAT8(-(double) omen_kernels->ip(a->x, b->x, a->dim));
}

/*
 * cosine_distance: 1 - cos(a, b), in [0, 2].  NaN when either vector is all
 * zeros, as the angle is undefined (pgvector returns NaN too).
 */
PG_FUNCTION_INFO_V1(cosine_distance);
Datum
cosine_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_CACHED(0);
	Vector	   *b = PG_GETARG_VECTOR_CACHED(1);
	float		ab;
	float		aa;
	float		bb;
	double		sim;

	CheckSameDims(a, b);
	omen_kernels->cosine_parts(a->x, b->x, a->dim, &ab, &aa, &bb);
	if (aa == 0.0f || bb == 0.0f)
		PG_RETURN_FLOAT8(get_float8_nan());
	sim = (double) ab / sqrt((double) aa * (double) bb);
	/* rounding can push |sim| past 1 */
	if (sim > 1.0)
		sim = 1.0;
	else if (sim < -1.0)
		sim = -1.0;
	PG_RETURN_FLOAT8(1.0 - sim);
}

/* l1_distance: taxicab distance */
PG_FUNCTION_INFO_V1(l1_distance);
Datum
l1_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_CACHED(0);
	Vector	   *b = PG_GETARG_VECTOR_CACHED(1);

	CheckSameDims(a, b);
	PG_RETURN_FLOAT8((double) omen_kernels->l1(a->x, b->x, a->dim));
}

/* vector_dims: number of elements */
PG_FUNCTION_INFO_V1(vector_dims);
Datum
vector_dims(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);

	PG_RETURN_INT32(a->dim);
}

/* vector_norm: Euclidean length, summed in double */
PG_FUNCTION_INFO_V1(vector_norm);
Datum
vector_norm(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	double		norm = 0.0;

	for (int i = 0; i < a->dim; i++)
		norm += (double) a->x[i] * (double) a->x[i];
	PG_RETURN_FLOAT8(sqrt(norm));
}

/* l2_normalize: scale to unit length; the zero vector stays zero */
PG_FUNCTION_INFO_V1(l2_normalize);
Datum
l2_normalize(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *result = InitVector(a->dim);
	double		norm = 0.0;

	for (int i = 0; i < a->dim; i++)
		norm += (double) a->x[i] * (double) a->x[i];
	norm = sqrt(norm);
	if (norm > 0.0)
	{
		for (int i = 0; i < a->dim; i++)
			result->x[i] = (float) ((double) a->x[i] / norm);
	}
	PG_RETURN_VECTOR_P(result);
}

/*
 * subvector(v, start, count): elements start .. start + count - 1, counting
 * from 1.  Like substring, the range is clipped to the vector; an empty
 * result is an error since a vector has at least one element.
 */
PG_FUNCTION_INFO_V1(subvector);
Datum
subvector(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	int32		start = PG_GETARG_INT32(1);
	int32		count = PG_GETARG_INT32(2);
	int64		first = start;
	int64		end = (int64) start + count;	/* exclusive */
	Vector	   *result;

	if (count < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("negative subvector length not allowed")));
	if (first < 1)
		first = 1;
	if (end > (int64) a->dim + 1)
		end = (int64) a->dim + 1;
	if (end <= first)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least 1 dimension"),
				 errdetail("Elements %d to %lld of a vector of %d dimensions are empty.",
						   start, (long long) start + count - 1, a->dim)));

	result = InitVector((int) (end - first));
	memcpy(result->x, a->x + (first - 1), sizeof(float) * result->dim);
	PG_RETURN_VECTOR_P(result);
}

/* vector_add: element-wise a + b */
PG_FUNCTION_INFO_V1(vector_add);
Datum
vector_add(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	CheckSameDims(a, b);
	result = InitVector(a->dim);
	for (int i = 0; i < a->dim; i++)
		result->x[i] = a->x[i] + b->x[i];
	for (int i = 0; i < a->dim; i++)
		CheckOverflow(result->x[i]);
	PG_RETURN_VECTOR_P(result);
}

/* vector_sub: element-wise a - b */
PG_FUNCTION_INFO_V1(vector_sub);
Datum
vector_sub(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	CheckSameDims(a, b);
	result = InitVector(a->dim);
	for (int i = 0; i < a->dim; i++)
		result->x[i] = a->x[i] - b->x[i];
	for (int i = 0; i < a->dim; i++)
		CheckOverflow(result->x[i]);
	PG_RETURN_VECTOR_P(result);
}

/* vector_mul: element-wise a * b */
PG_FUNCTION_INFO_V1(vector_mul);
Datum
vector_mul(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	CheckSameDims(a, b);
	result = InitVector(a->dim);
	for (int i = 0; i < a->dim; i++)
		result->x[i] = a->x[i] * b->x[i];
	for (int i = 0; i < a->dim; i++)
		CheckOverflow(result->x[i]);
	PG_RETURN_VECTOR_P(result);
}

/* vector_concat: a || b */
PG_FUNCTION_INFO_V1(vector_concat);
Datum
vector_concat(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	CheckVectorDim(a->dim + b->dim);
	result = InitVector(a->dim + b->dim);
	memcpy(result->x, a->x, sizeof(float) * a->dim);
	memcpy(result->x + a->dim, b->x, sizeof(float) * b->dim);
	PG_RETURN_VECTOR_P(result);
}

/*
 * Total order for btree: element by element, then the shorter vector first.
 * Values never hold NaN, so float comparison is a total order here.
 */
static int
VectorCmp(const Vector *a, const Vector *b)
{
	int			n = Min(a->dim, b->dim);

	for (int i = 0; i < n; i++)
	{
		if (a->x[i] < b->x[i])
			return -1;
		if (a->x[i] > b->x[i])
			return 1;
	}
	if (a->dim < b->dim)
		return -1;
	if (a->dim > b->dim)
		return 1;
	return 0;
}

/* vector_cmp: btree support function 1 */
PG_FUNCTION_INFO_V1(vector_cmp);
Datum
vector_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(VectorCmp(PG_GETARG_VECTOR_P(0), PG_GETARG_VECTOR_P(1)));
}

#define VECTOR_CMP_FUNC(name, op) \
PG_FUNCTION_INFO_V1(name); \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(VectorCmp(PG_GETARG_VECTOR_P(0), PG_GETARG_VECTOR_P(1)) op 0); \
}

VECTOR_CMP_FUNC(vector_lt, <)
VECTOR_CMP_FUNC(vector_le, <=)
VECTOR_CMP_FUNC(vector_eq, ==)
VECTOR_CMP_FUNC(vector_ne, !=)
VECTOR_CMP_FUNC(vector_ge, >=)
VECTOR_CMP_FUNC(vector_gt, >)

/*
 * Aggregate state for avg(vector): a float8[] of {count, sum_1, ..., sum_n},
 * starting from the initial condition '{0}'.  float8[] needs no serial
 * functions, so the aggregate runs in parallel plans with vector_combine.
 */
static float8 *
CheckAccumState(ArrayType *state, int *n)
{
	if (ARR_NDIM(state) != 1 || ARR_HASNULL(state) ||
		ARR_ELEMTYPE(state) != FLOAT8OID || ARR_DIMS(state)[0] < 1)
		elog(ERROR, "avg(vector): invalid transition state");
	*n = ARR_DIMS(state)[0] - 1;
	return (float8 *) ARR_DATA_PTR(state);
}

/* Make a {count, sums...} state array for n dimensions */
static ArrayType *
MakeAccumState(int n, const float8 *src)
{
	Datum	   *d = palloc(sizeof(Datum) * (n + 1));
	ArrayType  *result;

	for (int i = 0; i <= n; i++)
		d[i] = Float8GetDatumFast(src ? src[i] : 0.0);
	result = construct_array(d, n + 1, FLOAT8OID, sizeof(float8),
							 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	pfree(d);
	return result;
}

/* vector_accum: avg(vector) transition function */
PG_FUNCTION_INFO_V1(vector_accum);
Datum
vector_accum(PG_FUNCTION_ARGS)
{
	ArrayType  *state = PG_GETARG_ARRAYTYPE_P(0);
	Vector	   *v = PG_GETARG_VECTOR_P(1);
	float8	   *s;
	int			n;

	s = CheckAccumState(state, &n);
	if (s[0] == 0.0)
	{
		/* first row: a new array sized for this vector */
		state = MakeAccumState(v->dim, NULL);
		s = (float8 *) ARR_DATA_PTR(state);
	}
	else if (n != v->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", n, v->dim)));
	else if (!AggCheckCallContext(fcinfo, NULL))
	{
		/* outside an aggregate we must not scribble on the input */
		state = MakeAccumState(n, s);
		s = (float8 *) ARR_DATA_PTR(state);
	}

	s[0] += 1.0;
	for (int i = 0; i < v->dim; i++)
		s[i + 1] += (double) v->x[i];
	PG_RETURN_ARRAYTYPE_P(state);
}

/* vector_combine: avg(vector) combine function for parallel plans */
PG_FUNCTION_INFO_V1(vector_combine);
Datum
vector_combine(PG_FUNCTION_ARGS)
{
	ArrayType  *state1 = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *state2 = PG_GETARG_ARRAYTYPE_P(1);
	float8	   *s1;
	float8	   *s2;
	float8	   *r;
	int			n1;
	int			n2;
	ArrayType  *result;

	s1 = CheckAccumState(state1, &n1);
	s2 = CheckAccumState(state2, &n2);
	if (s2[0] == 0.0)
		PG_RETURN_ARRAYTYPE_P(MakeAccumState(n1, s1));
	if (s1[0] == 0.0)
		PG_RETURN_ARRAYTYPE_P(MakeAccumState(n2, s2));
	if (n1 != n2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", n1, n2)));

	result = MakeAccumState(n1, s1);
	r = (float8 *) ARR_DATA_PTR(result);
	for (int i = 0; i <= n1; i++)
		r[i] += s2[i];
	PG_RETURN_ARRAYTYPE_P(result);
}

/* vector_avg: avg(vector) final function; NULL when there were no rows */
PG_FUNCTION_INFO_V1(vector_avg);
Datum
vector_avg(PG_FUNCTION_ARGS)
{
	ArrayType  *state = PG_GETARG_ARRAYTYPE_P(0);
	float8	   *s;
	int			n;
	Vector	   *result;

	s = CheckAccumState(state, &n);
	if (s[0] == 0.0)
		PG_RETURN_NULL();

	result = InitVector(n);
	for (int i = 0; i < n; i++)
	{
		result->x[i] = (float) (s[i + 1] / s[0]);
		CheckOverflow(result->x[i]);
	}
	PG_RETURN_VECTOR_P(result);
}
