//! Indexed completion mode: completion indexes on pods and the compressed interval
//! notation of `status.completedIndexes` (`"1,3-5,7"`).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeSet;
use std::fmt;

/// Annotation (and label) carrying a pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Environment variable exposing the index to containers.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Upstream's `names.MaxGeneratedNameLength` (63 minus the 5 random characters).
const MAX_GENERATED_NAME_LENGTH: usize = 58;

/// Whether the Job uses Indexed completion.
pub fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

/// The pod's completion index from its annotation, if valid.
pub fn completion_index(pod: &Pod) -> Option<usize> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse::<i64>()
        .ok()
        .and_then(|i| usize::try_from(i).ok())
}

/// `generateName` for an indexed pod: `<job>-<index>-`, the job part cut so the whole
/// stays within the generated-name limit.
pub fn generate_name_with_index(job_name: &str, index: usize) -> String {
    let suffix = format!("-{index}-");
    let prefix = format!("{job_name}{suffix}");
    if prefix.len() <= MAX_GENERATED_NAME_LENGTH {
        return prefix;
    }
    let keep = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
    let cut: String = job_name.chars().take(keep).collect();
    format!("{cut}{suffix}")
}

/// Sorted, non-overlapping, non-adjacent closed intervals of indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intervals(Vec<(usize, usize)>);

impl Intervals {
    /// Parse `status.completedIndexes`, dropping indexes `>= completions` and corrupt parts.
    pub fn parse(s: &str, completions: usize) -> Intervals {
        let mut out: Vec<(usize, usize)> = Vec::new();
        if s.is_empty() {
            return Intervals(out);
        }
        for part in s.split(',') {
            let mut it = part.splitn(2, '-');
            let Some(Ok(first)) = it.next().map(str::parse::<usize>) else {
                continue;
            };
            if first >= completions {
                break;
            }
            let last = match it.next() {
                Some(l) => match l.parse::<usize>() {
                    Ok(l) => l.min(completions.saturating_sub(1)),
                    Err(_) => continue,
                },
                None => first,
            };
            match out.last_mut() {
                Some(prev) if prev.1 + 1 == first => prev.1 = last,
                _ => out.push((first, last)),
            }
        }
        Intervals(out)
    }

    /// These intervals plus `indexes`.
    pub fn with(&self, indexes: impl IntoIterator<Item = usize>) -> Intervals {
        let set: BTreeSet<usize> = indexes.into_iter().collect();
        let extra = Intervals(set.into_iter().map(|i| (i, i)).collect());
        self.merge(&extra)
    }

    /// Union with `other`.
    pub fn merge(&self, other: &Intervals) -> Intervals {
        let mut all: Vec<(usize, usize)> = self.0.iter().chain(other.0.iter()).copied().collect();
        all.sort_unstable();
        let mut out: Vec<(usize, usize)> = Vec::with_capacity(all.len());
        for iv in all {
            match out.last_mut() {
                Some(last) if iv.0 <= last.1 + 1 => last.1 = last.1.max(iv.1),
                _ => out.push(iv),
            }
        }
        Intervals(out)
    }

    /// Number of indexes covered.
    pub fn total(&self) -> usize {
        self.0.iter().map(|(a, b)| b - a + 1).sum()
    }

    /// Whether `ix` is covered.
    pub fn has(&self, ix: usize) -> bool {
        let pos = self.0.partition_point(|iv| iv.1 < ix);
        self.0.get(pos).is_some_and(|iv| iv.0 <= ix)
    }

    /// The first `count` indexes below `completions` not covered.
    pub fn first_missing(&self, count: usize, completions: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(count);
        let mut candidate = 0;
        for &(first, last) in &self.0 {
            while candidate < completions && out.len() < count && candidate < first {
                out.push(candidate);
                candidate += 1;
            }
            candidate = candidate.max(last + 1);
        }
        while candidate < completions && out.len() < count {
            out.push(candidate);
            candidate += 1;
        }
        out
    }
}

impl fmt::Display for Intervals {
    /// Upstream's format: two adjacent indexes are listed, longer runs use a dash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{a}")?;
            if b > a {
                let sep = if *b == a + 1 { ',' } else { '-' };
                write!(f, "{sep}{b}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let iv = Intervals::parse("0,2-4,6,7", 10);
        assert_eq!(iv.to_string(), "0,2-4,6,7");
        assert_eq!(iv.total(), 6);
        assert!(iv.has(3) && !iv.has(5) && iv.has(7) && !iv.has(8));
        // Out-of-range indexes are dropped, corrupt parts skipped.
        assert_eq!(Intervals::parse("1-9,x", 5).to_string(), "1-4");
        assert_eq!(Intervals::parse("", 5).total(), 0);
    }

    #[test]
    fn merge_and_missing() {
        let iv = Intervals::parse("1,3", 10).with([2, 5, 0]);
        assert_eq!(iv.to_string(), "0-3,5");
        assert_eq!(iv.first_missing(3, 10), vec![4, 6, 7]);
        assert_eq!(iv.first_missing(5, 7), vec![4, 6]);
    }

    #[test]
    fn generated_names() {
        assert_eq!(generate_name_with_index("pi", 3), "pi-3-");
        let long = "a".repeat(70);
        let g = generate_name_with_index(&long, 12);
        assert_eq!(g.len(), MAX_GENERATED_NAME_LENGTH);
        assert!(g.ends_with("-12-"));
    }
}
