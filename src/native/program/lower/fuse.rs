// SPDX-License-Identifier: MPL-2.0
//! Folding ×2 nearest upsamplings into the convolution that reads them ([`super::ConvStep::upsample`]): RRDBNet's
//! `conv_up1(nearest(x))` and `conv_up2(nearest(x))`. Only where nothing else sees the upsampled value — no other
//! step, no concatenation, not the graph output — since it is then never written; and only into a convolution the
//! phase kernel takes (33–64 outputs into a buffer, no residuals: `ConvKernel::choose`), so that folding never
//! costs a program its GPU kernels.

use super::Op;

/// Rewrites `ops` in place: each foldable `Nearest` is removed and its reader reads the small image, upsampling it.
/// `placements` are the concatenations (`(member, concat, offset)`), `output` the graph output's value.
pub(super) fn upsampling_into_convs(ops: &mut Vec<Op>, placements: &[(usize, usize, usize)], output: usize) {
    let mut reads = std::collections::HashMap::<usize, usize>::new();
    for op in ops.iter() {
        for v in op.reads() {
            *reads.entry(v).or_default() += 1;
        }
    }
    let placed = |v: usize| placements.iter().any(|&(member, concat, _)| member == v || concat == v);
    let mut folded = Vec::new();
    for i in 0..ops.len() {
        let Op::Nearest { input: small, output: big, factor: 2 } = ops[i] else { continue };
        if big == output || placed(big) || reads.get(&big) != Some(&1) {
            continue;
        }
        let reader = ops.iter_mut().skip(i + 1).find_map(|op| match op {
            Op::Conv { input, conv, output: written } if *input == big && conv.upsample == 1 => {
                let phase_kernel = (33..=64).contains(&conv.bias.len()) && conv.residuals.is_empty();
                (phase_kernel && *written != output).then_some((input, conv))
            }
            _ => None,
        });
        if let Some((input, conv)) = reader {
            *input = small;
            conv.upsample = 2;
            folded.push(i);
        }
    }
    for i in folded.into_iter().rev() {
        ops.remove(i);
    }
}
