//! How long the gateway takes to refuse documents built to hurt it, against
//! their size: fragment bombs (each fragment spreading the next one twice,
//! 2^levels fields once expanded) and brackets nested thousands deep.
//!
//! Each case runs the steps a request goes through before it is refused:
//! the nesting scan of the text, then (for bombs) async-graphql's parser and
//! the gateway's fragment guard. The refusal must cost time linear in the
//! document, which the figures show as a flat time per byte; before the
//! guard, a 30-level bomb held a core for minutes.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use music_gateway::graphql::{
    GuardLimits, Syntax,
    guard::{check_document, check_nesting},
};

fn bomb(levels: usize) -> String {
    let mut query = String::from("query Q { ...F0 }\n");
    for i in 0..levels {
        query.push_str(&format!(
            "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    query.push_str(&format!("fragment F{levels} on Query {{ me {{ id }} }}\n"));
    query
}

/// Parses and guards `query` as a request does; `true` when it is refused.
fn refuse(query: &str, limits: &GuardLimits) -> bool {
    if check_nesting(query.as_bytes(), Syntax::Graphql, limits).is_err() {
        return true;
    }
    match async_graphql::parser::parse_query(query) {
        Ok(document) => check_document(&document, limits).is_err(),
        Err(_) => true,
    }
}

fn refusals(c: &mut Criterion) {
    let limits = GuardLimits::default();
    let mut group = c.benchmark_group("fragment bomb refused");
    for levels in [10, 20, 30, 40, 80, 160, 320] {
        let query = bomb(levels);
        assert!(refuse(&query, &limits), "{levels} levels must be refused");
        group.throughput(Throughput::Bytes(query.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(levels), &query, |b, q| {
            b.iter(|| refuse(q, &limits))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("nested list literal refused");
    for depth in [100, 1_000, 10_000, 30_000] {
        let query = format!(
            "{{ me {{ songs(first: {}1{}) {{ totalCount }} }} }}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(refuse(&query, &limits));
        group.throughput(Throughput::Bytes(query.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(depth), &query, |b, q| {
            b.iter(|| refuse(q, &limits))
        });
    }
    group.finish();
}

criterion_group!(benches, refusals);
criterion_main!(benches);
