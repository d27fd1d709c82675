/* Exported by evolve from problem 'tanh': tanh(x) on [0, ln(3)/2], float32, max error in ULPs, FMA allowed.
 * Front row 198: cost 6, training error 2439.74 ULP (max_ulp); certified max error 2444.25 ULP over every float32 of the domain (worst x = 0.5493060350418091).
 *
 * The program:
 *
 *     r3 = sub(r0, r0)
 *     r4 = div(r3, r0)
 *     r3 = -0.40399686
 *     r6 = add(r2, r0)
 *     r7 = 0.87024534
 *     r1 = sub(r2, r4)
 *     r1 = mul(r6, r6)
 *     r6 = mul(r3, r0)
 *     r2 = 0.2706829
 *     r2 = mul(r5, r0)
 *     r5 = mul(r3, r4)
 *     r5 = 0.13743138
 *     r5 = sub(r5, r4)
 *     r1 = mul(r6, r1)
 *     r4 = add(r1, r4)
 *     r5 = sub(r7, r1)
 *     r2 = 0.5984885
 *     r3 = add(r6, r3)
 *     r4 = sub(r1, r1)
 *     r6 = fma(r2, r6, r7)
 *     r2 = fma(r7, r7, r2)
 *     r7 = mul(r0, r1)
 *     r1 = fma(r1, r6, r0)
 *     r6 = fma(r1, r5, r7)
 *     return r1
 *
 * C99. Compile with -ffp-contract=off and without -ffast-math; link with -lm.
 */

#include <math.h>

float f(float x)
{
    float r0 = x;
    float r2 = 0.0f;
    float r1, r3, r6, r7;
    r3 = -0x1.9db15ap-2f;  /* -0.40399686 */
    r6 = (r2 + r0);
    r7 = 0x1.bd90ccp-1f;  /* 0.87024534 */
    r1 = (r6 * r6);
    r6 = (r3 * r0);
    r1 = (r6 * r1);
    r2 = 0x1.326d16p-1f;  /* 0.5984885 */
    r6 = fmaf(r2, r6, r7);
    r1 = fmaf(r1, r6, r0);
    return r1;
}
