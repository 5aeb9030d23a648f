//! The in-memory image dataset every reader returns.

use crate::error::{DataError, Result};

/// A labelled set of equally sized images held in memory as `u8`, channel-first (CHW).
///
/// Image `i` occupies `pixels[i * c*h*w .. (i + 1) * c*h*w]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Raw pixels, `len * channels * height * width` bytes, CHW per image.
    pub pixels: Vec<u8>,
    /// One label per image, in `0..class_names.len()`.
    pub labels: Vec<u32>,
    /// Number of channels (1 grey, 3 RGB).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Human-readable class names, indexed by label.
    pub class_names: Vec<String>,
}

impl ImageSet {
    /// Builds a set, checking that the buffer sizes agree.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<u32>,
        channels: usize,
        height: usize,
        width: usize,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let per = channels * height * width;
        if per == 0 || pixels.len() != labels.len() * per {
            return Err(DataError::Split(format!(
                "{} pixel bytes do not hold {} images of {channels}x{height}x{width}",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= class_names.len()) {
            return Err(DataError::Split(format!(
                "label {bad} is out of range for {} classes",
                class_names.len()
            )));
        }
        Ok(Self {
            pixels,
            labels,
            channels,
            height,
            width,
            class_names,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image (`channels * height * width`).
    pub fn image_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.image_size();
        &self.pixels[i * s..(i + 1) * s]
    }

    /// A new set holding the images at `indices`, in that order (labels unchanged).
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let s = self.image_size();
        let mut pixels = Vec::with_capacity(indices.len() * s);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        ImageSet {
            pixels,
            labels,
            channels: self.channels,
            height: self.height,
            width: self.width,
            class_names: self.class_names.clone(),
        }
    }

    /// Keeps the images whose label is in `classes` and relabels them `0..classes.len()` in
    /// the order given (class `classes[k]` becomes label `k`).
    pub fn subset_classes(&self, classes: &[u32]) -> Result<ImageSet> {
        for &c in classes {
            if c as usize >= self.num_classes() {
                return Err(DataError::Split(format!(
                    "class {c} does not exist (the set has {} classes)",
                    self.num_classes()
                )));
            }
        }
        let mut map = vec![u32::MAX; self.num_classes()];
        for (k, &c) in classes.iter().enumerate() {
            map[c as usize] = k as u32;
        }
        let idx: Vec<usize> = (0..self.len())
            .filter(|&i| map[self.labels[i] as usize] != u32::MAX)
            .collect();
        let mut out = self.select(&idx);
        for l in &mut out.labels {
            *l = map[*l as usize];
        }
        out.class_names = classes
            .iter()
            .map(|&c| self.class_names[c as usize].clone())
            .collect();
        Ok(out)
    }

    /// Number of images per label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> ImageSet {
        // Four 1x1x2 images whose pixels encode their index.
        ImageSet::new(
            vec![0, 0, 1, 1, 2, 2, 3, 3],
            vec![2, 0, 1, 2],
            1,
            1,
            2,
            vec!["a".into(), "b".into(), "c".into()],
        )
        .unwrap()
    }

    #[test]
    fn subset_relabels_in_given_order() {
        let s = toy().subset_classes(&[2, 0]).unwrap();
        assert_eq!(s.labels, vec![0, 1, 0]);
        assert_eq!(s.pixels, vec![0, 0, 1, 1, 3, 3]);
        assert_eq!(s.class_names, vec!["c", "a"]);
    }

    #[test]
    fn rejects_bad_sizes_and_labels() {
        assert!(ImageSet::new(vec![0; 3], vec![0], 1, 1, 2, vec!["a".into()]).is_err());
        assert!(ImageSet::new(vec![0; 2], vec![1], 1, 1, 2, vec!["a".into()]).is_err());
        assert!(toy().subset_classes(&[5]).is_err());
    }
}
