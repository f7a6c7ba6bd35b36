//! Which campaigns of a set an order can reach, found without visiting every campaign.
//!
//! A set files each campaign under one condition that an order must meet for the campaign
//! to pay it anything: its most selective line filter (a line must name one of its
//! categories, SKUs or tags), else its stores, else its customer segments, else its
//! channels, else nowhere in particular (`always`). An order reaches the campaigns filed
//! under its channel, its store, its customer's segments and the names its lines carry,
//! plus the `always` ones: a superset of the campaigns that can pay it, which evaluation then
//! checks in full. A campaign left out can pay nothing, so evaluating only the reached ones
//! gives exactly what visiting every campaign gives (a property test holds the two equal).
//!
//! A fixed reward is the one reward that says something with no line to earn on (it is
//! capped at the eligible amount, zero, and a held-out customer is still told of it), so a
//! fixed reward with no minimum order value is never filed under a line filter.

use super::rules::{channel_bit, channel_index, symbol, CampaignVersion, CompiledLines, Reward};
use crate::ids::{Channel, Segment, StoreId};
use crate::limits::MAX_CAMPAIGNS_PER_EVALUATION;

const WORDS: usize = MAX_CAMPAIGNS_PER_EVALUATION.div_ceil(64);

// Postings hold a campaign's index in a `u8`.
const _: () = assert!(MAX_CAMPAIGNS_PER_EVALUATION <= 256);

/// A set of campaign indices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Mask([u64; WORDS]);

impl Mask {
    /// Every index below `n`.
    #[cfg(test)]
    pub fn below(n: usize) -> Mask {
        let mut m = Mask::default();
        (0..n).for_each(|i| m.insert(i));
        m
    }

    pub fn insert(&mut self, i: usize) {
        let (word, bit) = place(i);
        self.0[word] |= bit;
    }

    fn union(&mut self, other: &Mask) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }

    /// Whether the set holds index `i`.
    pub fn contains(&self, i: usize) -> bool {
        let (word, bit) = place(i);
        self.0[word] & bit != 0
    }

    /// How many indices the set holds.
    pub fn len(&self) -> usize {
        ones(&self.0)
    }

    /// How many of the set's indices are below `i`: the position of `i` among them, lowest
    /// first, when the set holds it.
    pub fn rank(&self, i: usize) -> usize {
        let (word, bit) = place(i);
        ones(&self.0[..word]) + (self.0[word] & (bit - 1)).count_ones() as usize
    }

    /// The indices, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    w * 64 + i
                })
            })
        })
    }
}

/// The word of a [`Mask`] that holds index `i`, and `i`'s bit in it.
fn place(i: usize) -> (usize, u64) {
    (i / 64, 1 << (i % 64))
}

/// How many bits the words hold.
fn ones(words: &[u64]) -> usize {
    words.iter().map(|w| w.count_ones() as usize).sum()
}

/// For each symbol of one kind, the campaigns filed under it (compressed rows: the campaigns
/// of symbol `s` are `campaigns[starts[s]..starts[s + 1]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Postings {
    starts: Vec<u32>,
    campaigns: Vec<u8>,
}

impl Postings {
    /// `filed[c]` lists the symbols campaign `c` is filed under; `symbols` is the table size.
    fn new(symbols: usize, filed: &[(usize, &[u32])]) -> Postings {
        let mut rows: Vec<Vec<u8>> = vec![Vec::new(); symbols];
        for (c, syms) in filed {
            for s in *syms {
                rows[*s as usize].push(*c as u8);
            }
        }
        let mut p = Postings {
            starts: Vec::with_capacity(symbols + 1),
            campaigns: Vec::new(),
        };
        p.starts.push(0);
        for row in rows {
            p.campaigns.extend(row);
            p.starts.push(p.campaigns.len() as u32);
        }
        p
    }

    /// Adds the campaigns filed under `symbol` (none for an unknown one) to `mask`.
    fn add(&self, symbol: u32, mask: &mut Mask) {
        let s = symbol as usize;
        if s + 1 < self.starts.len() {
            let (from, to) = (self.starts[s] as usize, self.starts[s + 1] as usize);
            self.campaigns[from..to]
                .iter()
                .for_each(|&c| mask.insert(usize::from(c)));
        }
    }
}

/// Where a set filed its campaigns; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReachIndex {
    always: Mask,
    channels: [Mask; Channel::ALL.len()],
    categories: Postings,
    skus: Postings,
    tags: Postings,
    /// Every store and segment a campaign is filed under, sorted (a name's symbol is its
    /// index), with their campaigns.
    store_names: Vec<StoreId>,
    stores: Postings,
    segment_names: Vec<Segment>,
    segments: Postings,
}

/// The condition a campaign is filed under.
enum Filed<'a> {
    Categories(&'a [u32]),
    Skus(&'a [u32]),
    Tags(&'a [u32]),
    Stores(&'a [StoreId]),
    Segments(&'a [Segment]),
    Channels(u8),
    Always,
}

fn filed<'a>(v: &'a CampaignVersion, lines: &'a CompiledLines) -> Filed<'a> {
    let r = &v.rules;
    let needs_a_line =
        !matches!(r.reward, Reward::Fixed { .. }) || r.conditions.min_eligible_order_minor > 0;
    let filters = [
        Filed::Categories(&lines.categories),
        Filed::Skus(&lines.skus),
        Filed::Tags(&lines.tags),
    ];
    let narrowest = filters
        .into_iter()
        .filter_map(|f| match f {
            Filed::Categories(s) | Filed::Skus(s) | Filed::Tags(s) if !s.is_empty() => {
                Some((s.len(), f))
            }
            _ => None,
        })
        .min_by_key(|(n, _)| *n)
        .map(|(_, f)| f);
    let k = &r.conditions;
    match (needs_a_line, narrowest) {
        (true, Some(f)) => f,
        _ if !k.stores.is_empty() => Filed::Stores(k.stores.as_slice()),
        _ if !k.segments.is_empty() => Filed::Segments(k.segments.as_slice()),
        _ if k.channels != 0 => Filed::Channels(k.channels),
        _ => Filed::Always,
    }
}

impl ReachIndex {
    /// Files `versions` (with their compiled line filters) over symbol tables of these sizes:
    /// categories, SKUs, tags.
    pub fn new(
        versions: &[CampaignVersion],
        compiled: &[CompiledLines],
        (categories, skus, tags): (usize, usize, usize),
    ) -> ReachIndex {
        let mut index = ReachIndex::default();
        let (mut by_category, mut by_sku, mut by_tag) = (Vec::new(), Vec::new(), Vec::new());
        let (mut by_store, mut by_segment) = (Vec::new(), Vec::new());
        for (c, (v, lines)) in versions.iter().zip(compiled).enumerate() {
            match filed(v, lines) {
                Filed::Categories(s) => by_category.push((c, s)),
                Filed::Skus(s) => by_sku.push((c, s)),
                Filed::Tags(s) => by_tag.push((c, s)),
                Filed::Stores(names) => by_store.push((c, names)),
                Filed::Segments(names) => by_segment.push((c, names)),
                Filed::Channels(bits) => {
                    for ch in Channel::ALL
                        .into_iter()
                        .filter(|ch| bits & channel_bit(*ch) != 0)
                    {
                        index.channels[channel_index(ch)].insert(c);
                    }
                }
                Filed::Always => index.always.insert(c),
            }
        }
        index.categories = Postings::new(categories, &by_category);
        index.skus = Postings::new(skus, &by_sku);
        index.tags = Postings::new(tags, &by_tag);
        (index.store_names, index.stores) = named(&by_store);
        (index.segment_names, index.segments) = named(&by_segment);
        index
    }

    /// The campaigns an order on `channel` whose lines carry these symbols can reach:
    /// `lines` gives each line's category and SKU symbols, `tags` every line's tag symbols.
    pub fn reach(
        &self,
        order: (Channel, Option<&StoreId>),
        segments: &[Segment],
        lines: impl Iterator<Item = (u32, u32)>,
        tags: &[u32],
    ) -> Mask {
        let (channel, store) = order;
        let mut mask = self.always;
        mask.union(&self.channels[channel_index(channel)]);
        if let Some(store) = store.filter(|_| !self.store_names.is_empty()) {
            self.stores.add(symbol(&self.store_names, store), &mut mask);
        }
        if !self.segment_names.is_empty() {
            for s in segments {
                self.segments.add(symbol(&self.segment_names, s), &mut mask);
            }
        }
        for (category, sku) in lines {
            self.categories.add(category, &mut mask);
            self.skus.add(sku, &mut mask);
        }
        for &t in tags {
            self.tags.add(t, &mut mask);
        }
        mask
    }
}

/// The names `filed` lists, as a sorted table, and the campaigns filed under each.
fn named<T: Ord + Clone>(filed: &[(usize, &[T])]) -> (Vec<T>, Postings) {
    let mut names: Vec<T> = filed.iter().flat_map(|(_, n)| n.iter().cloned()).collect();
    names.sort();
    names.dedup();
    let symbols: Vec<(usize, Vec<u32>)> = filed
        .iter()
        .map(|(c, n)| (*c, n.iter().map(|x| symbol(&names, x)).collect()))
        .collect();
    let by: Vec<(usize, &[u32])> = symbols.iter().map(|(c, s)| (*c, s.as_slice())).collect();
    let postings = Postings::new(names.len(), &by);
    (names, postings)
}

#[cfg(test)]
mod tests {
    use super::Mask;

    #[test]
    fn a_mask_lists_its_indices_lowest_first() {
        let mut m = Mask::default();
        for i in [255, 0, 64, 63, 130] {
            m.insert(i);
        }
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 63, 64, 130, 255]);
        assert_eq!(Mask::below(3).iter().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(Mask::default().iter().count(), 0);
    }

    #[test]
    fn a_mask_ranks_each_index_by_its_place_among_them() {
        let mut m = Mask::default();
        let held = [0, 63, 64, 130, 255];
        for i in held {
            m.insert(i);
        }
        assert_eq!(m.len(), 5);
        for (place, i) in held.into_iter().enumerate() {
            assert!(m.contains(i));
            assert_eq!(m.rank(i), place, "index {i}");
        }
        assert!(!m.contains(1) && !m.contains(129) && !m.contains(254));
        // An index the mask does not hold ranks where it would go.
        assert_eq!((m.rank(1), m.rank(65), m.rank(254)), (1, 3, 4));
        assert_eq!((Mask::default().len(), Mask::default().rank(200)), (0, 0));
    }
}
