/* ops.h - the numeric operations every model in Cochlea is built from.
 *
 * Conventions: activations are contiguous row-major fp32 arrays unless a stride is given;
 * "rows x cols" means rows of `cols` contiguous values. Every op takes the context first and
 * may use its thread pool; results must not depend on the thread count beyond float
 * reassociation. Ops that can fail (allocation, bad shape) return COCHLEA_OK or a COCHLEA_E*
 * code with a message; elementwise ops return void. Weights are `const tensor *` where their
 * storage type may vary (F32/F16/BF16/Q8_0), plain float pointers otherwise. Each op has a
 * naive reference implementation in the tests. */
#ifndef COCHLEA_OPS_H
#define COCHLEA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "tensor.h"

/* ==== elementwise, normalisation, activations, embeddings, positions, attention ==== */
/* (section owned by ops_basic.c / ops_attn.c) */

/* ==== convolutions and recurrent layers ==== */
/* (section owned by ops_conv.c / ops_rnn.c) */

#endif
