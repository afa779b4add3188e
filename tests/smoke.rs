use partstore::*;

#[test]
fn smoke_roundtrip_and_reopen() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..(11u32 << 20) + 5)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    {
        let s = Store::open(dir.path(), Options::default().segment_size(16 << 20))?;
        s.create_layer("l", LayerConfig::default())?;
        s.put_object("l", "a/b", PartBody::new(&data[..1000], 1000))?;
        let up = s.start_multipart("l", "big", "application/octet-stream")?;
        s.upload_part(
            "l",
            &up,
            2,
            PartBody::new(&data[5 << 20..10 << 20], 5 << 20),
        )?;
        s.upload_part("l", &up, 1, PartBody::new(&data[..5 << 20], 5 << 20))?;
        s.upload_part(
            "l",
            &up,
            3,
            PartBody::new(&data[10 << 20..], (data.len() - (10 << 20)) as u64),
        )?;
        let o = s.complete_multipart("l", &up)?;
        assert_eq!(o.crc32c, crc32c::crc32c(&data));
        assert_eq!(s.get("l", "big")?.to_vec()?, data);
        let up2 = s.start_multipart("l", "copy", "application/octet-stream")?;
        s.copy_part(
            "l",
            &up2,
            1,
            CopySource::new("big", "bytes=5242880-11534340".parse()?),
        )?;
        let o2 = s.complete_multipart("l", &up2)?;
        assert_eq!(o2.crc32c, crc32c::crc32c(&data[5 << 20..]));
    }
    let s = Store::open(dir.path(), Options::default())?;
    assert_eq!(s.get("l", "big")?.to_vec()?, data);
    assert_eq!(s.get("l", "copy")?.to_vec()?, &data[5 << 20..]);
    assert_eq!(s.get("l", "a/b")?.to_vec()?, &data[..1000]);
    let page = s.list("l", &ListOptions::default())?;
    assert_eq!(page.items.len(), 3, "{:?}", page.items);
    assert!(s.verify()?.is_clean());
    println!("{:?}", s.stats());
    Ok(())
}

#[test]
fn smoke_compaction() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..(6u32 << 20)).map(|i| (i * 7 % 253) as u8).collect();
    let opts = Options::default().segment_size(8 << 20);
    {
        let s = Store::open(dir.path(), opts.clone())?;
        s.create_layer("l", LayerConfig::default())?;
        for i in 0..6 {
            s.put_object(
                "l",
                &format!("k{i}"),
                PartBody::new(&data[..], data.len() as u64),
            )?;
        }
        for i in 0..5 {
            s.delete("l", &format!("k{i}"))?;
        }
        let blob = s.get("l", "k5")?;
        let before = s.stats();
        let r = s.compact()?;
        println!("{before:?}\n{r:?}\n{:?}", s.stats());
        assert!(r.segments_removed >= 5);
        assert_eq!(blob.to_vec()?, data);
        assert_eq!(s.get("l", "k5")?.to_vec()?, data);
        assert!(s.verify()?.is_clean());
    }
    let s = Store::open(dir.path(), opts)?;
    assert_eq!(s.get("l", "k5")?.to_vec()?, data);
    assert_eq!(s.stats().objects, 1);
    println!("{:?}", s.stats());
    Ok(())
}

/// The public types are shareable between threads as DESIGN.md promises.
#[test]
fn store_blob_and_slice_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
    send_sync::<Blob>();
    send_sync::<Slice>();
    send_sync::<Error>();
}

/// What upload_part returns is what list_parts shows.
#[test]
fn returned_part_info_equals_listed() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), Options::default())?;
    s.create_layer("l", LayerConfig::default())?;
    let up = s.start_multipart("l", "k", "application/octet-stream")?;
    let p = s.upload_part("l", &up, 3, PartBody::new(&b"abc"[..], 3))?;
    assert_eq!(s.list_parts("l", &up)?, vec![p]);
    Ok(())
}
