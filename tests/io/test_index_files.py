"""structfree_dask.io._index_files: what Harmony and MetaXpress index files record."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from structfree_dask.io._index_files import find_index, read_harmony_index, read_htd

HARMONY_NS = "http://www.perkinelmer.com/PEHH/HarmonyV5"


def harmony_index(folder: Path, images: list[dict[str, object]], maps: str = "") -> Path:
    """Write an ``Index.idx.xml`` as Harmony exports it: one Image element per file."""
    rows = []
    for i, image in enumerate(map(dict, images)):  # each element's own copy
        unit = image.pop("unit", "m")
        res = image.pop("resolution", None)
        parts = [f"<id>{i}</id>"] + [f"<{k}>{v}</{k}>" for k, v in image.items()]
        if res is not None:
            parts += [f'<ImageResolutionX Unit="{unit}">{res}</ImageResolutionX>',
                      f'<ImageResolutionY Unit="{unit}">{res}</ImageResolutionY>']
        rows.append(f'<Image Version="1">{"".join(parts)}</Image>')
    path = folder / "Index.idx.xml"
    path.write_text(
        f'<?xml version="1.0" encoding="utf-8"?><EvaluationInputData Version="2" '
        f'xmlns="{HARMONY_NS}"><Plates><Plate><PlateRows>16</PlateRows></Plate></Plates>'
        f'<Wells><Well><id>0203</id><Image id="0"/></Well></Wells>'
        f'<Maps>{maps}</Maps><Images>{"".join(rows)}</Images></EvaluationInputData>')
    return path


def image(channel: int, name: str | None = "Alexa 488", t: int = 1, **more: object) -> dict:
    element: dict[str, object] = {"URL": f"r02c03f01p01-ch{channel}sk{t}fk1fl1.tiff",
                                  "Row": 2, "Col": 3, "FieldID": 1, "PlaneID": 1,
                                  "TimepointID": t, "ChannelID": channel}
    if name is not None:
        element["ChannelName"] = name
    element.update(more)
    return element


def test_harmony_channel_names_and_pixel_size(tmp_path):
    harmony_index(tmp_path, [image(1, "HOECHST 33342", resolution="6.5E-07"),
                             image(2, "Alexa 488", resolution="6.5E-07"),
                             image(2, "Alexa 488", t=2, State="Error")])  # no file
    index = read_harmony_index(tmp_path / "Index.idx.xml")
    assert index.channel_names == {"ch1": "HOECHST 33342", "ch2": "Alexa 488"}
    assert index.pixel_size == pytest.approx((0.65, 0.65))
    assert index.time_interval_h is None  # one timepoint
    assert find_index(tmp_path) == index
    assert index.files == {"r02c03f01p01-ch1sk1fk1fl1.tiff", "r02c03f01p01-ch2sk1fk1fl1.tiff"}


def test_harmony_channels_described_in_its_maps(tmp_path):
    maps = ('<Map><Entry ChannelID="1"><ChannelName>DAPI</ChannelName>'
            '<ImageResolutionX Unit="um">0.3</ImageResolutionX>'
            '<ImageResolutionY Unit="um">0.3</ImageResolutionY></Entry></Map>')
    harmony_index(tmp_path, [image(1, None)], maps=maps)
    index = read_harmony_index(tmp_path / "Index.idx.xml")
    assert index.channel_names == {"ch1": "DAPI"}
    assert index.pixel_size == pytest.approx((0.3, 0.3))


def test_harmony_time_between_timepoints(tmp_path, caplog):
    # two channels, three timepoints 30 min apart (offsets in seconds)
    harmony_index(tmp_path, [image(c, t=t, MeasurementTimeOffset=1800 * (t - 1) + c)
                             for t in (1, 2, 3) for c in (1, 2)])
    assert read_harmony_index(tmp_path / "Index.idx.xml").time_interval_h == pytest.approx(0.5)
    assert "not evenly spaced" not in caplog.text
    # from the absolute times where no offset is given; the median of uneven steps, said
    times = ["2024-03-01T10:00:00.0000000+01:00", "2024-03-01T12:00:00+01:00",
             "2024-03-01T13:00:00+01:00"]
    harmony_index(tmp_path, [image(1, t=t, AbsTime=times[t - 1]) for t in (1, 2, 3)])
    assert read_harmony_index(tmp_path / "Index.idx.xml").time_interval_h == pytest.approx(1.5)
    assert "the timepoints are not evenly spaced (1 to 2 h apart): 1.5 h" in caplog.text


@pytest.mark.parametrize(("images", "message"), [
    ([image(1, resolution="6.5E-07"), image(2, resolution="3.25E-07")],
     "Index.idx.xml records pixel sizes 0.325 x 0.325 and 0.65 x 0.65 um: a plate has one"),
    ([image(1, "DAPI"), image(1, "Hoechst", t=2)],
     "Index.idx.xml names channel 1 'DAPI' and 'Hoechst': a channel has one name"),
])
def test_harmony_index_that_contradicts_itself_is_refused(tmp_path, images, message):
    harmony_index(tmp_path, images)
    with pytest.raises(ValueError, match=re.escape(message)):
        read_harmony_index(tmp_path / "Index.idx.xml")


def test_metaxpress_htd_wavelength_names(tmp_path):
    htd = tmp_path / "Plate1.HTD"
    htd.write_text('"HTSInfoFile", Version 1.0\r\n"Description", "a plate, 2 waves"\r\n'
                   '"TimePoints", 2\r\n"XWells", 24\r\n"Waves", TRUE\r\n"NWavelengths", 3\r\n'
                   '"WaveName1", "DAPI"\r\n"WaveName2", "FITC"\r\n"WaveName3", ""\r\n'
                   '"WaveCollect1", 1\r\n"EndFile"\r\n')
    index = read_htd(htd)
    assert index.name == "Plate1.HTD" and index.pixel_size is None
    assert index.channel_names == {"w1": "DAPI", "w2": "FITC"}  # an empty name is none
    assert index.timepoints == 2 and index.files == frozenset()
    # wells, sites and wavelengths taken: not said here (no selection lines; WaveCollect
    # lines only for some: the others were taken)
    assert index.wells is None and index.sites is None
    assert index.channels == frozenset({"w1", "w2", "w3"})


def test_metaxpress_htd_wells_sites_and_wavelengths_taken(tmp_path):
    htd = tmp_path / "Plate1.HTD"
    htd.write_text('"HTSInfoFile", Version 1.0\r\n"XWells", 3\r\n"YWells", 28\r\n'
                   '"WellsSelection1", FALSE, TRUE, FALSE\r\n'
                   '"WellsSelection2", TRUE, FALSE, TRUE\r\n'
                   '"WellsSelection28", FALSE, FALSE, TRUE, TRUE\r\n'  # a 4th column: not a well
                   '"Sites", TRUE\r\n"XSites", 3\r\n"YSites", 2\r\n'
                   '"SiteSelection1", TRUE, FALSE, TRUE\r\n"SiteSelection2", FALSE, TRUE, FALSE\r\n'
                   '"Waves", TRUE\r\n"NWavelengths", 3\r\n"WaveName1", "DAPI"\r\n'
                   '"WaveCollect1", 1\r\n"WaveCollect2", 0\r\n"WaveCollect3", 1\r\n"EndFile"\r\n')
    index = read_htd(htd)
    assert index.wells == frozenset({("A", "2"), ("B", "1"), ("B", "3"), ("AB", "3")})
    assert index.sites == 3  # the selected sites of the 3 x 2 grid
    assert index.channels == frozenset({"w1", "w3"})  # w2 not collected
    htd.write_text('"HTSInfoFile", Version 1.0\r\n"Sites", FALSE\r\n"XSites", 2\r\n'
                   '"Waves", FALSE\r\n"NWavelengths", 1\r\n')
    index = read_htd(htd)
    assert index.sites == 1 and index.channels is None and index.wells is None


def test_bad_or_several_index_files_are_refused(tmp_path):
    assert find_index(tmp_path) is None
    (tmp_path / "Plate1.HTD").write_text("not an HTD file\n")
    with pytest.raises(ValueError, match=re.escape(
            "Plate1.HTD: expected a MetaXpress HTD file starting with \"HTSInfoFile\"")):
        find_index(tmp_path)
    (tmp_path / "Index.idx.xml").write_text("<EvaluationInputData>")
    with pytest.raises(ValueError, match="expected one index file in"):
        find_index(tmp_path)
    (tmp_path / "Index.ref.xml").write_text("<EvaluationInputData/>")  # Harmony's own: one
    with pytest.raises(ValueError, match="Index.idx.xml, Plate1.HTD: expected one index file"):
        find_index(tmp_path)
    (tmp_path / "Plate1.HTD").unlink()
    with pytest.raises(ValueError, match="Index.idx.xml: not a readable index file"):
        find_index(tmp_path)
    (tmp_path / "Index.idx.xml").unlink()
    assert find_index(tmp_path).name == "Index.ref.xml"


BTS = "http://www.yokogawa.co.jp/BTS/BTSSchema/1.0"


def cellvoyager_index(folder: Path, sizes=(0.65, 0.65), times: dict[int, str] | None = None
                      ) -> Path:
    """Write a CellVoyager ``MeasurementDetail.mrf`` (one channel per size) and, with
    ``times`` (timepoint -> time), a ``MeasurementData.mlf`` of two channels."""
    channels = "".join(f'<bts:MeasurementChannel bts:Ch="{c}" bts:HorizontalPixelDimension="'
                       f'{size}" bts:VerticalPixelDimension="{size}" bts:CameraNumber="1"/>'
                       for c, size in enumerate(sizes, 1))
    (folder / "MeasurementDetail.mrf").write_text(
        f'<?xml version="1.0" encoding="utf-8"?><bts:MeasurementDetail xmlns:bts="{BTS}" '
        f'bts:BeginTime="2024-03-01T10:00:00+09:00">{channels}</bts:MeasurementDetail>')
    if times is not None:
        records = "".join(
            f'<bts:MeasurementRecord bts:Type="{kind}" bts:Time="{time}" bts:Row="2" '
            f'bts:Column="3" bts:TimePoint="{t}" bts:FieldIndex="1" bts:ZIndex="1" '
            f'bts:Ch="{c}">{"" if kind == "IMG" else "failed_"}P_B03_T{t:04d}F001L01A01Z01'
            f'C{c:02d}.tif</bts:MeasurementRecord>'
            for t, time in times.items() for c in (1, 2)
            for kind in ("IMG", "ERR"))  # an error record is not read
        (folder / "MeasurementData.mlf").write_text(
            f'<?xml version="1.0" encoding="utf-8"?><bts:MeasurementData xmlns:bts="{BTS}">'
            f'{records}</bts:MeasurementData>')
    return folder / "MeasurementDetail.mrf"


def test_cellvoyager_pixel_size_and_time_between_timepoints(tmp_path):
    cellvoyager_index(tmp_path, times={1: "2024-03-01T10:00:00.000+09:00",
                                       2: "2024-03-01T10:20:00.000+09:00",
                                       3: "2024-03-01T10:40:00.000+09:00"})
    index = find_index(tmp_path)
    assert index.name == "MeasurementDetail.mrf" and index.channel_names == {}
    assert index.pixel_size == pytest.approx((0.65, 0.65))
    assert index.time_interval_h == pytest.approx(1 / 3)
    assert len(index.files) == 6  # three timepoints of two channels; no error record
    (tmp_path / "MeasurementData.mlf").unlink()  # the settings alone: no times
    assert find_index(tmp_path).time_interval_h is None
    cellvoyager_index(tmp_path, sizes=(0.65, 0.325))
    with pytest.raises(ValueError, match=re.escape(
            "MeasurementDetail.mrf records pixel sizes 0.325 x 0.325 and 0.65 x 0.65 um for "
            "its channels: a plate has one")):
        find_index(tmp_path)
