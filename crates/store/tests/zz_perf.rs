use r8s_store::*;
use r8s_store::sqlite::*;
use std::sync::Arc;
use std::time::Instant;
#[tokio::test(flavor="multi_thread", worker_threads=2)]
async fn perf() {
    let dir = tempfile::tempdir_in("/work").unwrap();
    let s = Arc::new(SqliteStore::open(&dir.path().join("x.db"), Options{compact_interval: None, ..Default::default()}).await.unwrap());
    let t = Instant::now();
    let mut tasks = vec![];
    for w in 0..64 { let s = s.clone(); tasks.push(tokio::spawn(async move {
        for i in 0..(150_000/64 + 1) { let k = format!("/registry/pods/ns{}/p{w}-{i}", i % 50); s.create(&k, vec![b'x'; 1000], None).await.unwrap(); }
    }));}
    for t in tasks { t.await.unwrap(); }
    println!("insert: {:?}", t.elapsed());
    // some updates to build history
    let t = Instant::now();
    let l = s.list("/registry/pods/ns1/", ListOptions{limit: 500, ..Default::default()}).await.unwrap();
    for kv in &l.items { s.update(&kv.key, vec![b'y'; 1000], kv.mod_revision, None).await.unwrap(); }
    println!("500 serial updates: {:?}", t.elapsed());
    let t = Instant::now();
    println!("count all {} {:?}", s.count("/registry/pods/").await.unwrap(), t.elapsed());
    let t = Instant::now();
    println!("count ns {} {:?}", s.count("/registry/pods/ns7/").await.unwrap(), t.elapsed());
    let t = Instant::now();
    let mut opts = ListOptions{limit: 500, ..Default::default()};
    let mut n = 0; let mut pages = 0;
    loop { let r = s.list("/registry/pods/", opts.clone()).await.unwrap(); n += r.items.len(); pages += 1;
        if !r.more { break } opts.revision = r.revision; opts.start_after = r.items.last().map(|k| k.key.clone()); }
    println!("paged list all {n} in {pages} pages: {:?}", t.elapsed());
    let t = Instant::now();
    let r = s.list("/registry/pods/ns3/", ListOptions::default()).await.unwrap();
    println!("list ns3 {} {:?}", r.items.len(), t.elapsed());
    let t = Instant::now();
    let r = s.list("/registry/pods/", ListOptions::default()).await.unwrap();
    println!("list all unpaged {} {:?}", r.items.len(), t.elapsed());
    let t = Instant::now();
    for i in 0..1000 { s.get(&format!("/registry/pods/ns{}/p3-{i}", i%50), 0).await.unwrap(); }
    println!("1000 gets {:?}", t.elapsed());
    let cur = s.current_revision().await.unwrap();
    let t = Instant::now();
    use futures::StreamExt;
    let mut w = s.watch("/registry/pods/ns1/", cur - 10000).await.unwrap();
    let mut c = 0; while c < 10000/50 - 5 { w.next().await.unwrap().unwrap(); c += 1; }
    println!("watch history {c} {:?}", t.elapsed());
    let t = Instant::now();
    let mut w = s.watch("/registry/", cur - 10000).await.unwrap();
    let mut c = 0; while c < 10000 { w.next().await.unwrap().unwrap(); c += 1; }
    println!("watch history all {c} {:?}", t.elapsed());
    let t = Instant::now();
    s.compact(cur).await.unwrap();
    println!("compact {:?}", t.elapsed());
    println!("db size {}", std::fs::metadata(dir.path().join("x.db")).unwrap().len());
}
