//! The epoch iteration shared by [`Loader`](crate::loader::Loader) and
//! [`MultiViewLoader`](crate::multiview::MultiViewLoader): how many batches an epoch has,
//! and which slice of the epoch's order each batch takes. The loaders only turn a slice of
//! indices into their batch type.

/// Number of batches an epoch of `len` samples yields in batches of `batch_size`: the
/// final incomplete batch is dropped when `drop_last` (PyTorch's `drop_last`).
pub(crate) fn batches_per_epoch(len: usize, batch_size: usize, drop_last: bool) -> usize {
    if drop_last {
        len / batch_size
    } else {
        len.div_ceil(batch_size)
    }
}

/// One batch of an epoch: the indices it holds and the position of the first of them in
/// the epoch's order (the augmentation generators are derived from that position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Position in the epoch's order of `indices[0]`.
    pub start: usize,
    /// The indices of the batch, in the epoch's order.
    pub indices: Vec<usize>,
}

/// The batches of one epoch as [`Chunk`]s of its order, from a given batch on: an exact
/// size iterator whose `nth` skips batches without building them.
#[derive(Debug, Clone)]
pub(crate) struct EpochPlan {
    epoch: usize,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    end: usize,
}

impl EpochPlan {
    /// Epoch `epoch` visiting `order` in batches of `batch_size`, starting at batch
    /// `first_batch` (clamped to the end).
    pub fn new(
        epoch: usize,
        order: Vec<usize>,
        batch_size: usize,
        drop_last: bool,
        first_batch: usize,
    ) -> Self {
        let end = batches_per_epoch(order.len(), batch_size, drop_last);
        Self {
            epoch,
            order,
            batch_size,
            next: first_batch.min(end),
            end,
        }
    }

    /// The epoch being iterated.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The index within the epoch of the batch the next call to `next` returns.
    pub fn next_batch_index(&self) -> usize {
        self.next
    }
}

impl Iterator for EpochPlan {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        if self.next >= self.end {
            return None;
        }
        let start = self.next * self.batch_size;
        let stop = (start + self.batch_size).min(self.order.len());
        self.next += 1;
        Some(Chunk {
            start,
            indices: self.order[start..stop].to_vec(),
        })
    }

    fn nth(&mut self, n: usize) -> Option<Chunk> {
        self.next = self.next.saturating_add(n).min(self.end);
        self.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochPlan {}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts_and_lens(plan: EpochPlan) -> Vec<(usize, usize)> {
        plan.map(|c| (c.start, c.indices.len())).collect()
    }

    #[test]
    fn chunks_cover_the_order_in_batches() {
        let order: Vec<usize> = (0..23).rev().collect();
        let plan = EpochPlan::new(4, order.clone(), 5, false, 0);
        assert_eq!((plan.epoch(), plan.len()), (4, 5));
        let visited: Vec<usize> = plan.clone().flat_map(|c| c.indices).collect();
        assert_eq!(visited, order);
        assert_eq!(
            starts_and_lens(plan),
            [(0, 5), (5, 5), (10, 5), (15, 5), (20, 3)]
        );
        let dropped = EpochPlan::new(0, order.clone(), 5, true, 0);
        assert_eq!(starts_and_lens(dropped), [(0, 5), (5, 5), (10, 5), (15, 5)]);
        assert_eq!(batches_per_epoch(20, 5, true), 4);
        assert_eq!(batches_per_epoch(20, 5, false), 4);
        assert_eq!(batches_per_epoch(4, 5, true), 0);
    }

    #[test]
    fn resumes_and_skips() {
        let order: Vec<usize> = (0..23).collect();
        let mut plan = EpochPlan::new(0, order.clone(), 5, false, 2);
        assert_eq!((plan.next_batch_index(), plan.len()), (2, 3));
        assert_eq!(plan.next().unwrap().start, 10);
        let mut plan = EpochPlan::new(0, order.clone(), 5, false, 0);
        assert_eq!(plan.nth(3).unwrap().indices, [15, 16, 17, 18, 19]);
        assert_eq!(plan.next_batch_index(), 4);
        assert!(plan.nth(usize::MAX).is_none());
        assert_eq!(plan.len(), 0);
        assert_eq!(EpochPlan::new(0, order, 5, true, 9).len(), 0);
    }
}
