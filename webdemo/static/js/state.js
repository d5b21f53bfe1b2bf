// What views share during one visit: the gallery's sort and filter, and where it was scrolled.
export const session = {
  galleryState: { sort: "novelty", verdict: "" },
  galleryScroll: 0,
};
