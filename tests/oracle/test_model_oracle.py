"""Our models against the peer oracle with identical random weights passed through the official key layout."""

import pytest
import torch

from yoloxdet.models.zoo import create_model
from yoloxdet.ops.decode import decode
from yoloxdet.ops.nms import postprocess

from .peer import peer_model, randomize_


@pytest.mark.parametrize("name", ["yolox-nano", "yolox-tiny", "yolox-s", "yolox-m"])
def test_raw_decoded_and_postprocessed_outputs_match_official(name):
    from yolox.utils import postprocess as peer_postprocess

    peer = randomize_(peer_model(name)).eval()
    ours = create_model(name).eval()
    ours.load_state_dict(peer.state_dict(), strict=True)  # official key layout, no renaming
    images = torch.rand(2, 3, 192, 256, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        peer.head.decode_in_inference = False
        peer_raw = peer(images)
        peer.head.decode_in_inference = True
        peer_decoded = peer(images)
        out = ours(images)
    ours_raw = torch.cat([out.box_raw, out.obj_logits.sigmoid()[..., None], out.cls_logits.sigmoid()], dim=-1)
    ours_decoded = decode(out)
    assert (ours_raw - peer_raw).abs().max() < 1e-4
    assert (ours_decoded - peer_decoded).abs().max() < 1e-4

    for agnostic in (False, True):
        peer_dets = peer_postprocess(peer_decoded.clone(), 80, 0.05, 0.65, class_agnostic=agnostic)
        our_dets = postprocess(ours_decoded, 0.05, 0.65, class_agnostic=agnostic)
        assert sum(len(d.scores) for d in our_dets) > 0, "test must exercise NMS"
        for theirs, mine in zip(peer_dets, our_dets):
            assert theirs is not None and len(theirs) == len(mine.scores)
            torch.testing.assert_close(mine.boxes_xyxy, theirs[:, :4], atol=1e-4, rtol=0)
            torch.testing.assert_close(mine.scores, theirs[:, 4] * theirs[:, 5], atol=1e-5, rtol=0)
            assert torch.equal(mine.class_ids, theirs[:, 6].long())
